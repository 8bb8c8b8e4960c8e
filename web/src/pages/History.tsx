import { useEffect, useState } from "preact/hooks";
import { call } from "../api";
import { Pager, useCursors } from "../components/Pager";
import { Table } from "../components/Table";
import { JOB_TYPES } from "../schema";
import type { JobPage } from "../types";

const STATUSES = [
  "pending",
  "accepted",
  "queued",
  "running",
  "cancelling",
  "completed",
  "failed",
  "cancelled",
  "rejected",
  "expired",
];
const PAGE = 20;

/** The caller's jobs, newest first, filtered by status and type, a page at a time. */
export function History() {
  const [status, setStatus] = useState("");
  const [type, setType] = useState("");
  const cursors = useCursors();
  const cursor = cursors.cursor;
  const [page, setPage] = useState<JobPage | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (status) query.set("status", status);
    if (type) query.set("type", type);
    if (cursor) query.set("cursor", cursor);
    call<JobPage>(`/v1/jobs?${query}`)
      .then((answer) => {
        setPage(answer);
        setError(null);
      })
      .catch((failure: Error) => setError(failure.message));
  }, [status, type, cursor]);

  const filter = (apply: () => void) => {
    apply();
    cursors.reset();
  };

  return (
    <section>
      <h1>History</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="filter-status">Status</label>
          <select id="filter-status" value={status} onChange={(e) => filter(() => setStatus(e.currentTarget.value))}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="filter-type">Type</label>
          <select id="filter-type" value={type} onChange={(e) => filter(() => setType(e.currentTarget.value))}>
            <option value="">any</option>
            {JOB_TYPES.map((t) => (
              <option value={t}>{t}</option>
            ))}
          </select>
        </div>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {page && page.jobs.length === 0 && <p>No jobs match.</p>}
      {page && page.jobs.length > 0 && (
        <Table
          columns={["Job", "Type", "Status", "Created", "Credits"]}
          rows={page.jobs.map((job) => [
            <a href={`/jobs/${job.id}`}>{job.id}</a>,
            job.type,
            <span class={`badge ${job.status}`}>{job.status}</span>,
            <time dateTime={job.created_at}>{new Date(job.created_at).toLocaleString()}</time>,
            job.credits_charged ?? "—",
          ])}
        />
      )}
      <Pager label="Pages of jobs" cursors={cursors} next={page?.next_cursor} />
    </section>
  );
}
