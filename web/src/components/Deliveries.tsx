import { useEffect, useState } from "preact/hooks";
import { call } from "../api";
import type { Delivery } from "../types";

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
        <div class="table">
          <table>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">URL</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last answer</th>
              </tr>
            </thead>
            <tbody>
              {deliveries.map((d) => (
                <tr>
                  <td>{d.type}</td>
                  <td>{d.url}</td>
                  <td>{d.status}</td>
                  <td>{d.attempts}</td>
                  <td>{d.last_status_code ?? d.last_error ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <button type="button" class="secondary" onClick={() => void load()}>
        Refresh deliveries
      </button>
    </section>
  );
}
