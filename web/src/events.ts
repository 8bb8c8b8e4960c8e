// A job's event stream (Server-Sent Events): EventSource reconnects by itself after a drop,
// sending Last-Event-ID; when the server ends the stream because the access token that
// opened it expired, a new one is opened with a fresh token and ?last_event_id=.
import { accessToken } from "./api";

export interface StreamEvent {
  name: string;
  id: string;
  data: {
    id: string;
    type: string;
    job_id: string;
    time: string;
    data: Record<string, unknown>;
    urls?: Record<string, string>;
  };
}

export const TERMINAL = new Set([
  "job.completed",
  "job.failed",
  "job.cancelled",
  "job.rejected",
  "job.expired",
]);

const NAMES = [
  "job.requested",
  "job.accepted",
  "job.rejected",
  "job.queued",
  "job.started",
  "job.preview",
  "job.progress",
  "job.retried",
  "job.cancel_requested",
  "job.completed",
  "job.failed",
  "job.cancelled",
  "job.expired",
];

export interface StreamHandle {
  close(): void;
}

export type Connection = "connecting" | "open" | "reconnecting" | "closed";

export function followJob(
  jobId: string,
  onEvent: (event: StreamEvent) => void,
  onConnection: (state: Connection) => void,
): StreamHandle {
  let source: EventSource | null = null;
  let lastId: string | null = null;
  let ended = false;
  let stopped = false;
  let failures = 0;

  const open = async (): Promise<void> => {
    const token = await accessToken();
    if (stopped || !token) return;
    const query = new URLSearchParams({ access_token: token });
    if (lastId) query.set("last_event_id", lastId);
    source = new EventSource(`/v1/jobs/${encodeURIComponent(jobId)}/events?${query}`);
    onConnection(lastId ? "reconnecting" : "connecting");
    source.onopen = () => {
      failures = 0;
      onConnection("open");
    };
    for (const name of NAMES) {
      source.addEventListener(name, (message: MessageEvent<string>) => {
        lastId = message.lastEventId || lastId;
        onEvent({ name, id: message.lastEventId, data: JSON.parse(message.data) });
        if (TERMINAL.has(name)) {
          // The job's last event: the server ends the stream, and nothing is left to resume.
          ended = true;
          source?.close();
          onConnection("closed");
        }
      });
    }
    source.onerror = () => {
      if (!source || source.readyState !== EventSource.CLOSED) {
        onConnection("reconnecting");
        return;
      }
      // Closed for good: the job ended (204), or the token is refused. In the latter case
      // another stream with a fresh token resumes where this one stopped.
      source = null;
      failures += 1;
      if (ended || stopped || failures > 5) {
        onConnection("closed");
        return;
      }
      onConnection("reconnecting");
      window.setTimeout(() => void open(), 1000 * failures);
    };
  };

  void open();
  return {
    close() {
      stopped = true;
      source?.close();
      onConnection("closed");
    },
  };
}
