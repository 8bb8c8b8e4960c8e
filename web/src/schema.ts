// Job input forms, built from the published JSON Schema of job requests (contracts/schemas/,
// the same models the API validates with): each type's fields with their limits and defaults.
import requested from "../../contracts/schemas/genstream.job.requested.v1.json";

interface JsonSchema {
  type?: string;
  anyOf?: JsonSchema[];
  enum?: (string | number)[];
  const?: unknown;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  title?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
}

export type FieldKind = "text" | "longtext" | "integer" | "number" | "choice" | "upload";

export interface Field {
  name: string;
  label: string;
  kind: FieldKind;
  required: boolean;
  help?: string;
  default?: string | number;
  minimum?: number;
  maximum?: number;
  step?: number;
  maxLength?: number;
  minLength?: number;
  choices?: (string | number)[];
  accept?: string;
}

export interface JobForm {
  type: string;
  summary: string;
  fields: Field[];
}

const defs = (requested as unknown as { $defs: Record<string, JsonSchema> }).$defs;

// Uploads of images for image edits and of videos for enhancement (POST /v1/uploads).
const ACCEPT: Record<string, string> = {
  "image.edit": "image/png,image/jpeg,image/webp",
  "video.enhance": "video/mp4,video/quicktime,video/webm",
};

function concrete(schema: JsonSchema): JsonSchema {
  // Optional fields are `anyOf: [{...}, {type: "null"}]`; the form shows the non-null part.
  const options = schema.anyOf?.filter((option) => option.type !== "null");
  return options && options.length === 1 ? { ...options[0], ...pick(schema) } : schema;
}

function pick(schema: JsonSchema): JsonSchema {
  const { default: fallback, title, description } = schema;
  return { default: fallback, title, description };
}

function field(type: string, name: string, raw: JsonSchema, required: boolean): Field {
  const schema = concrete(raw);
  const label = schema.title ?? name;
  const help = schema.description;
  const base = { name, label, required, help };
  const fallback =
    typeof schema.default === "string" || typeof schema.default === "number"
      ? schema.default
      : undefined;
  if (name.endsWith("upload_id")) {
    // The API takes an upload's id; the form takes the file and uploads it first.
    const accept = ACCEPT[type] ?? "image/*";
    const what = accept.startsWith("video/") ? "Video file" : "Image file";
    const owner = label.replace(/\s*Upload Id$/i, "");
    return { ...base, label: owner ? `${owner} ${what.toLowerCase()}` : what, kind: "upload", accept };
  }
  if (schema.enum) return { ...base, kind: "choice", choices: schema.enum, default: fallback };
  if (schema.type === "integer" || schema.type === "number") {
    return {
      ...base,
      kind: schema.type,
      default: fallback,
      minimum: schema.minimum,
      maximum: schema.maximum,
      step: schema.multipleOf ?? (schema.type === "integer" ? 1 : 0.1),
    };
  }
  const long = (schema.maxLength ?? 0) > 200;
  return {
    ...base,
    kind: long ? "longtext" : "text",
    default: fallback,
    minLength: schema.minLength,
    maxLength: schema.maxLength,
  };
}

function form(schema: JsonSchema): JobForm | null {
  const kind = schema.properties?.kind?.const;
  if (typeof kind !== "string") return null;
  const required = new Set(schema.required ?? []);
  // Exported schemas list properties by name: required ones, then words, then numbers reads
  // better in a form.
  const rank = (f: Field) =>
    (f.required ? 0 : 10) + (f.kind === "upload" ? 0 : f.kind === "longtext" || f.kind === "text" ? 1 : 2);
  const fields = Object.entries(schema.properties ?? {})
    .filter(([name]) => name !== "kind")
    .map(([name, property]) => field(kind, name, property, required.has(name)))
    .sort((a, b) => rank(a) - rank(b));
  return { type: kind, summary: schema.description ?? kind, fields };
}

const ORDER = (defs.JobType?.enum ?? []) as string[];

export const JOB_FORMS: JobForm[] = Object.values(defs)
  .map(form)
  .filter((found): found is JobForm => found !== null)
  .sort((a, b) => ORDER.indexOf(a.type) - ORDER.indexOf(b.type));

export const JOB_TYPES: string[] = JOB_FORMS.map((f) => f.type);

/** The job's input from the form's values: blank optional fields left out, numbers as numbers
 * (the API takes types strictly: "512" is no integer). */
export function inputOf(jobForm: JobForm, values: Record<string, string>): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const f of jobForm.fields) {
    const value = values[f.name]?.trim() ?? "";
    if (value === "") continue;
    if (f.kind === "integer" || (f.kind === "choice" && typeof f.choices?.[0] === "number")) {
      input[f.name] = Number.parseInt(value, 10);
    } else if (f.kind === "number") {
      input[f.name] = Number.parseFloat(value);
    } else {
      input[f.name] = values[f.name];
    }
  }
  return input;
}
