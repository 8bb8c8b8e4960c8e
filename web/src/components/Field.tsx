import type { Field } from "../schema";

interface Props {
  field: Field;
  value: string;
  onChange: (value: string) => void;
  onFile?: (file: File | null) => void;
}

function limits(field: Field): string {
  const parts: string[] = field.required ? ["required"] : [];
  if (field.minimum !== undefined && field.maximum !== undefined) {
    parts.push(`${field.minimum}–${field.maximum}`);
  }
  if (field.kind === "integer" && field.step && field.step > 1) parts.push(`multiple of ${field.step}`);
  if (field.maxLength !== undefined) parts.push(`up to ${field.maxLength} characters`);
  if (field.default !== undefined) parts.push(`default ${field.default}`);
  if (!field.required && field.default === undefined) parts.push("optional");
  return parts.join(", ");
}

/** One input of a job's form, labelled, with the schema's limits as its constraints. */
export function FieldInput({ field, value, onChange, onFile }: Props) {
  const id = `field-${field.name}`;
  const hint = [field.help, limits(field)].filter(Boolean).join(" · ");
  const described = hint ? `${id}-hint` : undefined;
  const common = { id, name: field.name, required: field.required, "aria-describedby": described };
  let control;
  if (field.kind === "upload") {
    control = (
      <input
        {...common}
        type="file"
        accept={field.accept}
        onChange={(e) => onFile?.((e.currentTarget as HTMLInputElement).files?.[0] ?? null)}
      />
    );
  } else if (field.kind === "choice") {
    control = (
      <select {...common} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        {!field.required && field.default === undefined && <option value="">—</option>}
        {field.choices?.map((choice) => (
          <option value={String(choice)}>{String(choice)}</option>
        ))}
      </select>
    );
  } else if (field.kind === "longtext") {
    control = (
      <textarea
        {...common}
        rows={3}
        minLength={field.minLength}
        maxLength={field.maxLength}
        value={value}
        onInput={(e) => onChange(e.currentTarget.value)}
      />
    );
  } else if (field.kind === "integer" || field.kind === "number") {
    control = (
      <input
        {...common}
        type="number"
        inputMode={field.kind === "integer" ? "numeric" : "decimal"}
        min={field.minimum}
        max={field.maximum}
        step={field.kind === "number" ? "any" : field.step}
        placeholder={field.default !== undefined ? String(field.default) : undefined}
        value={value}
        onInput={(e) => onChange(e.currentTarget.value)}
      />
    );
  } else {
    control = (
      <input
        {...common}
        type="text"
        minLength={field.minLength}
        maxLength={field.maxLength}
        value={value}
        onInput={(e) => onChange(e.currentTarget.value)}
      />
    );
  }
  return (
    <div class="field">
      <label for={id}>
        {field.label}
      </label>
      {control}
      {hint && (
        <small id={described} class="hint">
          {hint}
        </small>
      )}
    </div>
  );
}
