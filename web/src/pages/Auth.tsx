import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { signIn, signUp } from "../api";

/** Sign-in, and sign-up (which signs in right after: the answer is the same either way). */
export function Auth({ mode }: { mode: "signin" | "signup" }) {
  const { route } = useLocation();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const signingUp = mode === "signup";

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (signingUp) await signUp(email, password);
      await signIn(email, password);
      route("/playground");
    } catch (failure) {
      setError(
        signingUp && failure instanceof Error && /password/i.test(failure.message)
          ? failure.message
          : signingUp
            ? `${(failure as Error).message}. If this email already had an account, sign in with its password.`
            : (failure as Error).message,
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="narrow">
      <h1>{signingUp ? "Create an account" : "Sign in"}</h1>
      <form onSubmit={submit} aria-describedby={error ? "auth-error" : undefined}>
        <div class="field">
          <label for="email">Email</label>
          <input
            id="email"
            type="email"
            autocomplete="email"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="password">Password</label>
          <input
            id="password"
            type="password"
            autocomplete={signingUp ? "new-password" : "current-password"}
            required
            minLength={signingUp ? 10 : undefined}
            aria-describedby={signingUp ? "password-hint" : undefined}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
          {signingUp && (
            <small id="password-hint" class="hint">
              At least 10 characters.
            </small>
          )}
        </div>
        {error && (
          <p id="auth-error" class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {signingUp ? "Sign up" : "Sign in"}
        </button>
      </form>
      <p>
        {signingUp ? (
          <>
            Have an account? <a href="/signin">Sign in</a>
          </>
        ) : (
          <>
            New here? <a href="/signup">Create an account</a>
          </>
        )}
      </p>
    </section>
  );
}
