import { useEffect, useState } from "preact/hooks";
import { call } from "../api";
import { BlurHash } from "../components/BlurHash";
import { Deliveries } from "../components/Deliveries";
import { type Connection, followJob, type StreamEvent, TERMINAL } from "../events";
import type { Job as JobRead, Output } from "../types";

interface Progress {
  percent: number;
  step: number;
  total: number;
  message: string | null;
}

interface View {
  job: JobRead | null;
  status: string;
  blurhash: string | null;
  preview: string | null;
  previews: { url: string; step: number }[];
  progress: Progress | null;
  outputs: Output[];
  error: string | null;
}

const CONNECTION: Record<Connection, string> = {
  connecting: "connecting…",
  open: "live",
  reconnecting: "reconnecting…",
  closed: "ended",
};

const ENDED = new Set(["completed", "failed", "cancelled", "rejected", "expired"]);

function seconds(value: number | null | undefined): string {
  if (value === null || value === undefined) return "unknown";
  return value < 90 ? `${Math.round(value)} s` : `${Math.round(value / 60)} min`;
}

function outputsOf(event: StreamEvent): Output[] {
  const files = (event.data.data.outputs ?? []) as (Output & { key: string })[];
  return files.map((file) => ({
    ...file,
    name: file.key.split("/").pop() ?? file.key,
    url: event.data.urls?.[file.key] ?? null,
  }));
}

function apply(view: View, event: StreamEvent): View {
  const data = event.data.data;
  switch (event.name) {
    case "job.progress": {
      const progress = {
        percent: Number(data.percent ?? 0),
        step: Number(data.step ?? 0),
        total: Number(data.total_steps ?? 0),
        message: (data.message as string | null) ?? null,
      };
      return {
        ...view,
        status: ENDED.has(view.status) || view.status === "cancelling" ? view.status : "running",
        progress,
        blurhash: (data.blurhash as string | null) ?? view.blurhash,
        preview: (data.preview_url as string | null) ?? view.preview,
      };
    }
    case "job.preview": {
      const url = event.data.urls?.[data.preview_key as string];
      const seen = url === undefined || view.previews.some((p) => p.url === url);
      return {
        ...view,
        blurhash: (data.blurhash as string | null) ?? view.blurhash,
        preview: url ?? view.preview,
        previews: seen ? view.previews : [...view.previews, { url, step: Number(data.step ?? 0) }],
      };
    }
    case "job.completed":
      return { ...view, status: "completed", outputs: outputsOf(event) };
    case "job.failed":
      return { ...view, status: "failed", error: String(data.error_message ?? "") };
    case "job.retried":
      return { ...view, status: "queued", progress: null };
    default: {
      const status = event.name.replace("job.", "");
      if (TERMINAL.has(event.name)) {
        return { ...view, status, error: (data.reason as string | undefined) ?? view.error };
      }
      const order = ["pending", "accepted", "queued", "running", "cancelling"];
      const next = status === "started" ? "running" : status;
      return order.indexOf(next) > order.indexOf(view.status) ? { ...view, status: next } : view;
    }
  }
}

interface PictureProps {
  hash: string | null;
  src: string | null;
  alt: string;
  width: number;
  height: number;
}

/** The BlurHash (or a blank of the right shape) at once, and the picture over it once loaded. */
function Picture({ hash, src, alt, width, height }: PictureProps) {
  const [loaded, setLoaded] = useState<string | null>(null);
  return (
    <div class="picture" style={{ aspectRatio: `${width} / ${height}` }}>
      {hash ? <BlurHash hash={hash} width={width} height={height} /> : <div class="placeholder" aria-hidden="true" />}
      {src && (
        <img
          src={src}
          alt={alt}
          width={width}
          height={height}
          class={loaded === src ? "loaded" : "loading"}
          onLoad={() => setLoaded(src)}
        />
      )}
    </div>
  );
}

function Result({ output }: { output: Output }) {
  if (!output.url) return <p>{output.name} ({output.size} bytes)</p>;
  const kind = output.content_type.split("/")[0];
  return (
    <figure class="result">
      {kind === "image" && (
        <Picture hash={output.blurhash} src={output.url} alt="The generated image" width={output.width ?? 1} height={output.height ?? 1} />
      )}
      {kind === "audio" && <audio controls src={output.url} aria-label="The generated audio" />}
      {kind === "video" && <video controls src={output.url} aria-label="The generated video" />}
      <figcaption>
        <a href={output.url} download={output.name} class="download">
          Download {output.name}
        </a>{" "}
        ({output.content_type}, {output.size} bytes)
      </figcaption>
    </figure>
  );
}

export function Job({ id }: { id: string }) {
  const [view, setView] = useState<View>({
    job: null,
    status: "pending",
    blurhash: null,
    preview: null,
    previews: [],
    progress: null,
    outputs: [],
    error: null,
  });
  const [connection, setConnection] = useState<Connection>("connecting");
  const [failure, setFailure] = useState<string | null>(null);
  const [cancelling, setCancelling] = useState(false);

  const load = async () => {
    try {
      const job = await call<JobRead>(`/v1/jobs/${encodeURIComponent(id)}`);
      setView((v) => ({
        ...v,
        job,
        status: ENDED.has(v.status) ? v.status : job.status,
        blurhash: v.blurhash ?? job.preview?.blurhash ?? job.outputs[0]?.blurhash ?? null,
        preview: v.preview ?? job.preview?.url ?? null,
        outputs: v.outputs.length ? v.outputs : job.outputs,
        error: v.error ?? job.error?.message ?? null,
      }));
    } catch (error) {
      setFailure((error as Error).message);
    }
  };

  useEffect(() => {
    void load();
    const stream = followJob(
      id,
      (event) => {
        setView((v) => apply(v, event));
        if (event.name === "job.queued" || TERMINAL.has(event.name)) void load();
      },
      setConnection,
    );
    return () => stream.close();
  }, [id]);

  useEffect(() => {
    // Queue position and ETA are read, not streamed: asked again while the job waits.
    if (view.status !== "queued") return;
    const timer = window.setInterval(() => void load(), 3000);
    return () => window.clearInterval(timer);
  }, [view.status]);

  const cancel = async () => {
    setCancelling(true);
    try {
      await call(`/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      setView((v) => (ENDED.has(v.status) ? v : { ...v, status: "cancelling" }));
    } catch (error) {
      setFailure((error as Error).message);
      setCancelling(false);
    }
  };

  const job = view.job;
  const width = Number(job?.input.width ?? 1);
  const height = Number(job?.input.height ?? 1);
  const ended = ENDED.has(view.status);
  const picture = !job || job.type.startsWith("image") || job.type.startsWith("video");
  const percent = view.progress ? Math.round(view.progress.percent) : ended && view.status === "completed" ? 100 : 0;

  return (
    <section>
      <h1>
        Job <code>{id}</code>
      </h1>
      {failure && (
        <p class="error" role="alert">
          {failure}
        </p>
      )}
      <dl class="facts">
        <dt>Type</dt>
        <dd>{job?.type ?? "…"}</dd>
        <dt>Status</dt>
        <dd>
          <span class={`badge ${view.status}`} data-status={view.status} role="status">
            {view.status}
          </span>
        </dd>
        <dt>Stream</dt>
        <dd data-connection={connection}>{CONNECTION[connection]}</dd>
        {job?.credits_charged != null && (
          <>
            <dt>Credits charged</dt>
            <dd>{job.credits_charged}</dd>
          </>
        )}
      </dl>
      {view.status === "queued" && job?.queue && (
        <p class="queue" data-testid="queue">
          Position {job.queue.position} in the queue, {job.queue.workers} worker(s); starts in about{" "}
          {seconds(job.queue.estimated_start_s)}, done in about {seconds(job.queue.eta_s)}.
        </p>
      )}
      {!ended && (
        <div class="progress">
          <label for="job-progress">
            {view.progress ? `Step ${view.progress.step} of ${view.progress.total}` : "Waiting for a worker"}
            {view.progress?.message ? `: ${view.progress.message}` : ""}
          </label>
          <progress id="job-progress" max={100} value={percent}>
            {percent}%
          </progress>
        </div>
      )}
      {!ended && (
        <button type="button" class="danger" onClick={cancel} disabled={cancelling}>
          {cancelling ? "Cancelling…" : "Cancel job"}
        </button>
      )}
      {view.error && <p class="error">{view.error}</p>}
      {picture && view.outputs.length === 0 && (
        <div class="canvas" data-testid="picture">
          <Picture
            hash={view.blurhash}
            src={view.preview}
            alt="Latest preview of the job"
            width={width}
            height={height}
          />
        </div>
      )}
      {view.previews.length > 0 && (
        <section aria-labelledby="previews-title">
          <h2 id="previews-title">Previews</h2>
          <ol class="previews">
            {view.previews.map((preview) => (
              <li>
                <img class="preview" src={preview.url} alt={`Preview at step ${preview.step}`} width={96} height={Math.round((96 * height) / width)} />
              </li>
            ))}
          </ol>
        </section>
      )}
      {view.outputs.map((output) => (
        <Result output={output} />
      ))}
      {ended && <Deliveries jobId={id} />}
    </section>
  );
}
