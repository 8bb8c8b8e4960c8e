import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, call } from "../api";
import { Chart, type Series } from "../components/Chart";
import { Table } from "../components/Table";
import type { Rerun, StatusSnapshot } from "../types";

const EVERY_MS = 5000;
const HOUR_S = 3600;
const SAMPLES = "genstream.operator.samples";

interface Sample {
  t: number;
  depth: Record<string, number>;
  lag: Record<string, number>;
  deadLetters: number;
}

function sampleOf(status: StatusSnapshot): Sample {
  const depth: Record<string, number> = {};
  for (const tier of status.tiers) depth[tier.workload] = (depth[tier.workload] ?? 0) + tier.depth;
  const lag: Record<string, number> = {};
  for (const group of status.groups) lag[group.group] = group.lag;
  const deadLetters = status.dead_letters_last_hour.reduce((sum, d) => sum + d.count, 0);
  return { t: Date.parse(status.taken_at) / 1000, depth, lag, deadLetters };
}

function kept(): Sample[] {
  // The snapshot has no history of its own: the page keeps what it sampled (for the tab's
  // life), an hour of it.
  const stored = sessionStorage.getItem(SAMPLES);
  return stored ? (JSON.parse(stored) as Sample[]) : [];
}

function seriesOf(samples: Sample[], pick: (s: Sample) => Record<string, number>): Series[] {
  const names = [...new Set(samples.flatMap((s) => Object.keys(pick(s))))].sort();
  return names.map((name) => ({ label: name, values: samples.map((s) => pick(s)[name] ?? null) }));
}

function wait(seconds: number | null): string {
  if (seconds === null) return "—";
  return seconds < 120 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`;
}

/** Re-runs a failed job (a new job, charged once) and says what became of it. */
function RerunButton({ jobId }: { jobId: string }) {
  const [state, setState] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const rerun = async () => {
    setBusy(true);
    try {
      const done = await call<Rerun>(`/v1/admin/jobs/${encodeURIComponent(jobId)}/rerun`, { method: "POST" });
      setState(done.created ? `re-run as ${done.rerun_job_id}` : `already re-run as ${done.rerun_job_id}`);
    } catch (failure) {
      setState((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return state ? (
    <span role="status" data-testid="rerun-result">
      {state}
    </span>
  ) : (
    <button type="button" onClick={() => void rerun()} disabled={busy} aria-label={`Re-run job ${jobId}`}>
      Re-run
    </button>
  );
}

/** The system at a glance for operators (the admin role): what `genstream status` shows. */
export function Operator() {
  const [status, setStatus] = useState<StatusSnapshot | null>(null);
  const [samples, setSamples] = useState<Sample[]>(kept);
  const [error, setError] = useState<string | null>(null);
  const [forbidden, setForbidden] = useState(false);

  useEffect(() => {
    let stopped = false;
    let timer = 0;
    const load = async () => {
      try {
        const snapshot = await call<StatusSnapshot>("/v1/admin/status");
        if (stopped) return;
        setStatus(snapshot);
        setError(null);
        setSamples((previous) => {
          const next = [...previous, sampleOf(snapshot)].filter((s) => s.t >= Date.now() / 1000 - HOUR_S);
          sessionStorage.setItem(SAMPLES, JSON.stringify(next));
          return next;
        });
      } catch (failure) {
        if (failure instanceof ApiError && failure.status === 403) {
          setForbidden(true);
          return;
        }
        setError((failure as Error).message);
      }
      if (!stopped) timer = window.setTimeout(() => void load(), EVERY_MS);
    };
    void load();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, []);

  const times = useMemo(() => samples.map((s) => s.t), [samples]);
  const depth = useMemo(() => seriesOf(samples, (s) => s.depth), [samples]);
  const lag = useMemo(() => seriesOf(samples, (s) => s.lag), [samples]);
  // The read model keeps its own hour of ends, so this chart is whole from the first load.
  const ended = status?.finished_last_hour ?? [];
  const endedTimes = useMemo(() => ended.map((m) => Date.parse(m.minute) / 1000), [ended]);
  const throughput = useMemo(
    () => [
      { label: "completed a minute", values: ended.map((m) => m.completed) },
      { label: "failed a minute", values: ended.map((m) => m.failed) },
    ],
    [ended],
  );
  const dead = useMemo(() => [{ label: "dead letters, last hour", values: samples.map((s) => s.deadLetters) }], [samples]);

  if (forbidden) {
    return (
      <section>
        <h1>Operator</h1>
        <p>This page is for operators: an admin grants the role with <code>genstream admin grant &lt;email&gt;</code>.</p>
      </section>
    );
  }
  return (
    <section>
      <h1>Operator</h1>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {!status && !error && <p role="status">Reading the system's status…</p>}
      {status && (
        <>
          <p role="status" data-testid="health" data-healthy={String(status.healthy)}>
            {status.healthy ? "Healthy" : "Needs attention"} at{" "}
            <time dateTime={status.taken_at}>{new Date(status.taken_at).toLocaleTimeString()}</time>;{" "}
            {status.reserved_credits} credits held for {status.accounts_with_reservations} account(s).
          </p>
          {status.problems.length > 0 && (
            <ul class="problems">
              {status.problems.map((problem) => (
                <li>{problem}</li>
              ))}
            </ul>
          )}
          <h2>Charts</h2>
          <p class="hint">Sampled every {EVERY_MS / 1000} s while this page is open, up to an hour.</p>
          <div class="charts">
            <Chart title="Jobs ended a minute" times={endedTimes} series={throughput} />
            <Chart title="Queued jobs by workload" times={times} series={depth} />
            <Chart title="Consumer-group lag" times={times} series={lag} />
            <Chart title="Dead letters" times={times} series={dead} />
          </div>
          <h2>Tiers</h2>
          <Table
            columns={["Workload", "Tier", "Queued", "Oldest wait", "Queue deadline"]}
            rows={status.tiers.map((t) => [t.workload, t.tier, t.depth, wait(t.oldest_wait_s), wait(t.queue_ttl_s)])}
          />
          <h2>Consumer groups</h2>
          <Table
            columns={["Group", "State", "Members", "Lag"]}
            rows={status.groups.map((g) => [g.group, g.state, g.members, g.lag])}
          />
          <h2>Workers</h2>
          {(status.workers ?? []).length === 0 ? (
            <p>No worker is running a job.</p>
          ) : (
            <Table
              columns={["Worker", "Running", "Job types", "Since", "Jobs"]}
              rows={(status.workers ?? []).map((w) => [
                w.worker_id,
                w.running,
                w.job_types.join(", "),
                w.oldest_started_at ? new Date(w.oldest_started_at).toLocaleTimeString() : "—",
                w.job_ids.join(" "),
              ])}
            />
          )}
          <h2>Services</h2>
          <ul class="services">
            {status.services.map((service) => (
              <li>
                <span class={`badge ${service.up ? "completed" : "failed"}`}>{service.up ? "up" : "down"}</span>{" "}
                {service.name}
              </li>
            ))}
          </ul>
          <h2>Dead letters in the last hour</h2>
          {status.dead_letters_last_hour.length === 0 ? (
            <p>None.</p>
          ) : (
            <Table
              columns={["Reason", "Topic", "Records"]}
              rows={status.dead_letters_last_hour.map((d) => [d.reason, d.topic, d.count])}
            />
          )}
          <p class="hint">
            Failed jobs are re-run from the list below (a new job, charged once). Other parked records
            are listed by <code>genstream deadletter list</code> and go back to their topics with{" "}
            <code>genstream deadletter redrive [--topic TOPIC]</code>.
          </p>
          <h2>Latest failures</h2>
          {status.recent_failures.length === 0 ? (
            <p>None.</p>
          ) : (
            <Table
              columns={["Job", "Type", "Error", "Ended", "Re-run"]}
              rows={status.recent_failures.map((f) => [
                f.job_id,
                f.type,
                f.error_code ?? f.error ?? "—",
                f.finished_at ? new Date(f.finished_at).toLocaleString() : "—",
                <RerunButton key={f.job_id} jobId={f.job_id} />,
              ])}
            />
          )}
        </>
      )}
    </section>
  );
}
