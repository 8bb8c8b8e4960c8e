import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Series {
  label: string;
  values: (number | null)[];
}

const HOUR_S = 3600;
const COLOURS = ["#1f5a92", "#b35c00", "#1d6b3a", "#a4262c", "#6b3fa0", "#00707a", "#7a6a00"];

/** A line chart (uPlot) of samples over time; its numbers are in a table beside it too. */
export function Chart({ title, times, series }: { title: string; times: number[]; series: Series[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => s.label).join("|");

  useEffect(() => {
    if (!box.current) return;
    const width = Math.max(280, Math.min(720, box.current.clientWidth));
    plot.current = new uPlot(
      {
        width,
        height: 200,
        // The last hour, whatever has been sampled of it so far.
        scales: { x: { time: true, range: () => [Date.now() / 1000 - HOUR_S, Date.now() / 1000] } },
        legend: { live: false },
        axes: [{}, { label: title }],
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2 }))],
      },
      [times, ...series.map((s) => s.values)],
      box.current,
    );
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
  }, [shape]);

  useEffect(() => {
    plot.current?.setData([times, ...series.map((s) => s.values)]);
  }, [times, series]);

  return <div ref={box} class="chart" role="img" aria-label={`${title} over the last hour`} />;
}
