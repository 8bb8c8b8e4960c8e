import { useEffect, useState } from "preact/hooks";
import { call } from "../api";
import type { Delivery } from "../types";
import { Table } from "./Table";

/** The job's webhook deliveries: where each went, how it fared, and what is planned next. */
export function Deliveries({ jobId }: { jobId: string }) {
  const [deliveries, setDeliveries] = useState<Delivery[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () =>
    call<{ deliveries: Delivery[] }>(`/v1/jobs/${encodeURIComponent(jobId)}/webhooks`)
      .then((answer) => setDeliveries(answer.deliveries))
      .catch((failure: Error) => setError(failure.message));
  useEffect(() => void load(), [jobId]);
  return (
    <section aria-labelledby="deliveries-title">
      <h2 id="deliveries-title">Webhook deliveries</h2>
      {error && <p class="error">{error}</p>}
      {deliveries && deliveries.length === 0 && <p>This job has no webhook.</p>}
      {deliveries && deliveries.length > 0 && (
        <Table
          columns={["Event", "URL", "Status", "Attempts", "Last answer"]}
          rows={deliveries.map((d) => [d.type, d.url, d.status, d.attempts, d.last_status_code ?? d.last_error ?? "—"])}
        />
      )}
      <button type="button" class="secondary" onClick={() => void load()}>
        Refresh deliveries
      </button>
    </section>
  );
}
