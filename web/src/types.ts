// Shapes of the API's answers that the pages read (see the OpenAPI document at /docs).

export interface Output {
  name: string;
  size: number;
  content_type: string;
  blurhash: string | null;
  duration_s: number | null;
  width: number | null;
  height: number | null;
  url: string | null;
}

export interface Queue {
  position: number;
  workers: number;
  median_run_s: number | null;
  estimated_start_s: number | null;
  eta_s: number | null;
}

export interface JobSummary {
  id: string;
  type: string;
  status: string;
  created_at: string;
  updated_at: string;
  tier: string | null;
  finished_at: string | null;
  error: { code: string | null; message: string | null } | null;
  credits_charged: number | null;
}

export interface Job extends JobSummary {
  input: Record<string, unknown>;
  outputs: Output[];
  preview: { content_type: string; blurhash: string | null; url: string | null } | null;
  queue: Queue | null;
}

export interface JobPage {
  jobs: JobSummary[];
  next_cursor: string | null;
}

export interface LedgerEntry {
  id: string;
  kind: string;
  amount: number;
  reserved_change: number;
  job_id: string | null;
  detail: string | null;
  occurred_at: string;
}

export interface Credits {
  balance: number;
  reserved: number;
  ledger: LedgerEntry[];
  next_cursor: string | null;
}

export interface PlanLimits {
  tier: string;
  max_video_duration_s: number;
  max_video_height: number;
  monthly_video_minutes: number | null;
  lifetime_videos: number | null;
  max_concurrent_jobs: number;
  queue_ttl_s: number;
}

export interface Catalog {
  plans: Record<string, PlanLimits>;
  prices: Record<string, { credits: number; per: string; unit: number }>;
}

export interface Me {
  id: string;
  email: string;
  plan: string;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
}

export interface Delivery {
  id: string;
  type: string;
  url: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: string | null;
  next_attempt_at: string | null;
}

/** `GET /v1/admin/status`: the snapshot `genstream status` prints. */
export interface StatusSnapshot {
  taken_at: string;
  healthy: boolean;
  problems: string[];
  services: { name: string; up: boolean; url: string; detail: string }[];
  tiers: {
    workload: string;
    tier: string;
    topic: string;
    depth: number;
    oldest_wait_s: number | null;
    queue_ttl_s: number | null;
  }[];
  groups: { group: string; state: string; members: number; lag: number }[];
  dead_letters_last_hour: { reason: string; topic: string; count: number }[];
  recent_failures: {
    job_id: string;
    type: string;
    tier: string | null;
    error_code: string | null;
    error: string | null;
    finished_at: string | null;
  }[];
  reserved_credits: number;
  accounts_with_reservations: number;
  /** Jobs that ended in each minute of the last hour that had any, oldest first. */
  finished_last_hour?: { minute: string; completed: number; failed: number; other: number }[];
  /** Each worker with running jobs, busiest first. */
  workers?: {
    worker_id: string;
    running: number;
    job_types: string[];
    job_ids: string[];
    oldest_started_at: string | null;
  }[];
}

export interface Rerun {
  job_id: string;
  rerun_job_id: string;
  created: boolean;
}
