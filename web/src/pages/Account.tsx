import { useEffect, useState } from "preact/hooks";
import { call } from "../api";
import { Pager, useCursors } from "../components/Pager";
import { Table } from "../components/Table";
import type { ApiKey, Catalog, Credits, Me } from "../types";

function Balance() {
  const [credits, setCredits] = useState<Credits | null>(null);
  const cursors = useCursors();
  const cursor = cursors.cursor;
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const query = new URLSearchParams({ limit: "20" });
    if (cursor) query.set("cursor", cursor);
    call<Credits>(`/v1/credits?${query}`).then(setCredits).catch((e: Error) => setError(e.message));
  }, [cursor]);
  return (
    <section aria-labelledby="credits-title">
      <h2 id="credits-title">Credits</h2>
      {error && <p class="error">{error}</p>}
      {credits && (
        <>
          <p class="balance">
            <strong data-testid="balance">{credits.balance}</strong> credits available,{" "}
            {credits.reserved} held by running jobs.
          </p>
          <Table
            caption="Ledger, newest first"
            columns={["When", "Kind", "Amount", "Held", "Job"]}
            rows={credits.ledger.map((entry) => [
              <time dateTime={entry.occurred_at}>{new Date(entry.occurred_at).toLocaleString()}</time>,
              entry.kind,
              entry.amount,
              entry.reserved_change,
              entry.job_id ? <a href={`/jobs/${entry.job_id}`}>{entry.job_id}</a> : (entry.detail ?? "—"),
            ])}
          />
          <Pager label="Pages of the ledger" cursors={cursors} next={credits.next_cursor} />
        </>
      )}
    </section>
  );
}

function Plan() {
  const [me, setMe] = useState<Me | null>(null);
  const [catalog, setCatalog] = useState<Catalog | null>(null);
  useEffect(() => {
    void call<Me>("/v1/me").then(setMe);
    void call<Catalog>("/v1/plans").then(setCatalog);
  }, []);
  const limits = me && catalog ? catalog.plans[me.plan] : null;
  return (
    <section aria-labelledby="plan-title">
      <h2 id="plan-title">Plan and limits</h2>
      {me && (
        <p>
          Signed in as <strong>{me.email}</strong> on the <strong data-testid="plan">{me.plan}</strong> plan.
        </p>
      )}
      {limits && (
        <dl class="facts">
          <dt>Queue tier</dt>
          <dd>{limits.tier}</dd>
          <dt>Jobs at once</dt>
          <dd>{limits.max_concurrent_jobs}</dd>
          <dt>Longest video</dt>
          <dd>{limits.max_video_duration_s} s</dd>
          <dt>Tallest video</dt>
          <dd>{limits.max_video_height} px</dd>
          <dt>Video minutes a month</dt>
          <dd>{limits.monthly_video_minutes ?? "no limit"}</dd>
          <dt>Queue deadline</dt>
          <dd>{Math.round(limits.queue_ttl_s / 60)} min</dd>
        </dl>
      )}
      {catalog && (
        <Table
          caption="Prices"
          columns={["Job type", "Credits"]}
          rows={Object.entries(catalog.prices).map(([type, price]) => [
            type,
            `${price.credits} per ${price.unit > 1 ? `${price.unit} ${price.per}s` : price.per}`,
          ])}
        />
      )}
    </section>
  );
}

function ApiKeys() {
  const [keys, setKeys] = useState<ApiKey[]>([]);
  const [name, setName] = useState("");
  const [created, setCreated] = useState<{ name: string; key: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () =>
    call<{ items: ApiKey[] }>("/v1/api-keys")
      .then((answer) => setKeys(answer.items))
      .catch((e: Error) => setError(e.message));
  useEffect(() => void load(), []);

  const create = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const answer = await call<{ id: string; name: string; key: string }>("/v1/api-keys", {
        method: "POST",
        body: JSON.stringify({ name }),
      });
      setCreated(answer);
      setName("");
      await load();
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const revoke = async (key: ApiKey) => {
    if (!window.confirm(`Revoke the API key “${key.name}”? Clients using it stop working.`)) return;
    await call(`/v1/api-keys/${encodeURIComponent(key.id)}`, { method: "DELETE" }).catch((e: Error) => setError(e.message));
    await load();
  };

  return (
    <section aria-labelledby="keys-title">
      <h2 id="keys-title">API keys</h2>
      {created && (
        <div class="notice" role="status">
          <p>
            The key <strong>{created.name}</strong> is shown this once; copy it now:
          </p>
          <p>
            <code data-testid="new-key">{created.key}</code>
          </p>
          <button type="button" class="secondary" onClick={() => setCreated(null)}>
            I have copied it
          </button>
        </div>
      )}
      <form onSubmit={create} class="inline">
        <div class="field">
          <label for="key-name">Name of a new key</label>
          <input id="key-name" required maxLength={100} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <button type="submit">Create key</button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {keys.length > 0 && (
        <Table
          columns={["Name", "Starts with", "Created", "Last used", <span class="visually-hidden">Actions</span>]}
          rows={keys.map((key) => [
            key.name,
            <code>{key.prefix}…</code>,
            new Date(key.created_at).toLocaleString(),
            key.last_used_at ? new Date(key.last_used_at).toLocaleString() : "never",
            <button type="button" class="danger" onClick={() => void revoke(key)} aria-label={`Revoke ${key.name}`}>
              Revoke
            </button>,
          ])}
        />
      )}
    </section>
  );
}

export function Account() {
  return (
    <section>
      <h1>Account</h1>
      <Balance />
      <Plan />
      <ApiKeys />
    </section>
  );
}
