// The REST API of the page's own origin: bearer tokens, refreshed once when they expire,
// and RFC 9457 problem documents turned into errors that say what went wrong.

const TOKENS = "genstream.tokens";

export interface Tokens {
  access_token: string;
  refresh_token: string;
  expires_at: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problem: Problem | null,
  ) {
    super(message);
  }
}

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  errors?: { loc: (string | number)[]; msg: string; type: string }[];
}

type Listener = (signedIn: boolean) => void;
const listeners = new Set<Listener>();

export function onAuthChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function tokens(): Tokens | null {
  const stored = localStorage.getItem(TOKENS);
  return stored ? (JSON.parse(stored) as Tokens) : null;
}

function keep(answer: { access_token: string; refresh_token: string; expires_in: number }): void {
  const kept: Tokens = {
    access_token: answer.access_token,
    refresh_token: answer.refresh_token,
    expires_at: Date.now() + answer.expires_in * 1000,
  };
  localStorage.setItem(TOKENS, JSON.stringify(kept));
  listeners.forEach((listener) => listener(true));
}

export function forget(): void {
  localStorage.removeItem(TOKENS);
  listeners.forEach((listener) => listener(false));
}

async function problemOf(response: Response): Promise<ApiError> {
  let problem: Problem | null = null;
  try {
    problem = (await response.json()) as Problem;
  } catch {
    problem = null;
  }
  const fields = problem?.errors?.map((e) => `${e.loc.slice(1).join(".")}: ${e.msg}`) ?? [];
  const message =
    [problem?.detail ?? problem?.title ?? response.statusText, ...fields].join("; ") ||
    `HTTP ${response.status}`;
  return new ApiError(response.status, message, problem);
}

let refreshing: Promise<boolean> | null = null;

async function refresh(): Promise<boolean> {
  const held = tokens();
  if (!held) return false;
  // One refresh for every request that found the token expired: the refresh token rotates.
  refreshing ??= (async () => {
    const response = await fetch("/v1/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: held.refresh_token }),
    });
    if (!response.ok) {
      forget();
      return false;
    }
    keep(await response.json());
    return true;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** A fresh access token (refreshed when it is about to expire); null when signed out. */
export async function accessToken(): Promise<string | null> {
  const held = tokens();
  if (!held) return null;
  if (held.expires_at - Date.now() < 30_000 && !(await refresh())) return null;
  return tokens()?.access_token ?? null;
}

export async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  for (let tried = 0; ; tried++) {
    const token = await accessToken();
    const headers = new Headers(init.headers);
    if (token) headers.set("Authorization", `Bearer ${token}`);
    if (init.body && typeof init.body === "string" && !headers.has("Content-Type")) {
      headers.set("Content-Type", "application/json");
    }
    const response = await fetch(path, { ...init, headers });
    if (response.status === 401 && token && tried === 0 && (await refresh())) continue;
    if (!response.ok) throw await problemOf(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }
}

export async function signIn(email: string, password: string): Promise<void> {
  const response = await fetch("/v1/auth/token", {
    method: "POST",
    body: new URLSearchParams({ username: email, password }),
  });
  if (!response.ok) throw await problemOf(response);
  keep(await response.json());
}

export async function signUp(email: string, password: string): Promise<void> {
  const response = await fetch("/v1/auth/register", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (!response.ok) throw await problemOf(response);
}

export async function signOut(): Promise<void> {
  if (tokens()) await call("/v1/auth/logout", { method: "POST" }).catch(() => undefined);
  forget();
}

export interface UploadTicket {
  id: string;
  upload_url: string;
  method: "PUT";
  headers: Record<string, string>;
  expires_at: string;
}

/** Sends a file straight to storage: a single-use presigned PUT with exactly the headers it
 * was signed with. Returns the upload's id for a job's input. */
export async function upload(file: File): Promise<string> {
  const ticket = await call<UploadTicket>("/v1/uploads", {
    method: "POST",
    body: JSON.stringify({ content_type: file.type, size: file.size }),
  });
  const response = await fetch(ticket.upload_url, {
    method: ticket.method,
    headers: ticket.headers,
    body: file,
  });
  if (!response.ok) throw new ApiError(response.status, `the store refused the upload (HTTP ${response.status})`, null);
  return ticket.id;
}
