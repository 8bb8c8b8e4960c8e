import { useMemo, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { call, upload } from "../api";
import { FieldInput } from "../components/Field";
import { inputOf, JOB_FORMS } from "../schema";

interface Submitted {
  id: string;
  status: string;
}

/** One form per job type, from the published input schema; files go straight to storage. */
export function Playground() {
  const { route, query } = useLocation();
  const [type, setType] = useState(query.type && JOB_FORMS.some((f) => f.type === query.type) ? query.type : JOB_FORMS[0].type);
  const [values, setValues] = useState<Record<string, string>>({});
  const [files, setFiles] = useState<Record<string, File | null>>({});
  const [webhook, setWebhook] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const jobForm = useMemo(() => JOB_FORMS.find((f) => f.type === type)!, [type]);
  // One key per filled-in form: a retried submit (a double click, a timeout) is the same job.
  const [idempotencyKey, setIdempotencyKey] = useState(() => crypto.randomUUID());

  const change = (name: string, value: string) => {
    setValues({ ...values, [name]: value });
    setIdempotencyKey(crypto.randomUUID());
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const filled = { ...values };
      for (const f of jobForm.fields.filter((x) => x.kind === "upload")) {
        const file = files[f.name];
        if (!file) continue;
        setBusy(`Uploading ${file.name}…`);
        filled[f.name] = await upload(file);
      }
      setBusy("Submitting…");
      const body: Record<string, unknown> = { type, input: inputOf(jobForm, filled) };
      if (webhook.trim()) body.webhook_url = webhook.trim();
      const job = await call<Submitted>("/v1/jobs", {
        method: "POST",
        headers: { "Idempotency-Key": idempotencyKey },
        body: JSON.stringify(body),
      });
      route(`/jobs/${job.id}`);
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(null);
    }
  };

  return (
    <section>
      <h1>Playground</h1>
      <form onSubmit={submit} class="job-form">
        <div class="field">
          <label for="job-type">Job type</label>
          <select
            id="job-type"
            value={type}
            onChange={(e) => {
              setType(e.currentTarget.value);
              setValues({});
              setFiles({});
            }}
          >
            {JOB_FORMS.map((f) => (
              <option value={f.type}>{f.type}</option>
            ))}
          </select>
          <small class="hint">{jobForm.summary}</small>
        </div>
        <fieldset>
          <legend>{type} input</legend>
          {jobForm.fields.map((f) => (
            <FieldInput
              key={`${type}-${f.name}`}
              field={f}
              value={values[f.name] ?? ""}
              onChange={(value) => change(f.name, value)}
              onFile={(file) => {
                setFiles({ ...files, [f.name]: file });
                setIdempotencyKey(crypto.randomUUID());
              }}
            />
          ))}
        </fieldset>
        <div class="field">
          <label for="webhook-url">Webhook URL</label>
          <input
            id="webhook-url"
            type="url"
            aria-describedby="webhook-hint"
            value={webhook}
            onInput={(e) => setWebhook(e.currentTarget.value)}
          />
          <small id="webhook-hint" class="hint">
            Optional: called when the job ends.
          </small>
        </div>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <p class="status" role="status">
          {busy}
        </p>
        <button type="submit" disabled={busy !== null}>
          Submit
        </button>
      </form>
    </section>
  );
}
