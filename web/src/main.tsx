import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { lazy, LocationProvider, Route, Router, useLocation, useRoute } from "preact-iso";
import { call, onAuthChange, signOut, tokens } from "./api";
import { Account } from "./pages/Account";
import { Auth } from "./pages/Auth";
import { History } from "./pages/History";
import { Job } from "./pages/Job";
import { Playground } from "./pages/Playground";
import "./style.css";

const SIGNED_IN_PAGES = [
  { href: "/playground", label: "Playground" },
  { href: "/jobs", label: "History" },
  { href: "/account", label: "Account" },
];

// Operators' charts are a library users' pages never need: loaded with the page that draws them.
const Operator = lazy(() => import("./pages/Operator").then((page) => page.Operator));

const OPERATOR = "genstream.operator";

/** Whether the account may see the operator page: asked once a session, remembered. */
function useOperator(signedIn: boolean): boolean {
  const [operator, setOperator] = useState(sessionStorage.getItem(OPERATOR) === "yes");
  useEffect(() => {
    if (!signedIn) {
      sessionStorage.removeItem(OPERATOR);
      setOperator(false);
      return;
    }
    if (sessionStorage.getItem(OPERATOR) !== null) return;
    call("/v1/admin/status")
      .then(() => true)
      .catch(() => false)
      .then((allowed) => {
        sessionStorage.setItem(OPERATOR, allowed ? "yes" : "no");
        setOperator(allowed);
      });
  }, [signedIn]);
  return operator;
}

function Nav({ signedIn }: { signedIn: boolean }) {
  const { path, route } = useLocation();
  const operator = useOperator(signedIn);
  return (
    <header class="bar">
      <a class="brand" href={signedIn ? "/playground" : "/signin"}>
        genstream
      </a>
      <nav aria-label="Main">
        <ul>
          {signedIn &&
            SIGNED_IN_PAGES.map((page) => (
              <li>
                <a href={page.href} aria-current={path.startsWith(page.href) ? "page" : undefined}>
                  {page.label}
                </a>
              </li>
            ))}
          {signedIn && operator && (
            <li>
              <a href="/operator" aria-current={path.startsWith("/operator") ? "page" : undefined}>
                Operator
              </a>
            </li>
          )}
          {signedIn ? (
            <li>
              <button type="button" class="link" onClick={() => void signOut().then(() => route("/signin"))}>
                Sign out
              </button>
            </li>
          ) : (
            <>
              <li>
                <a href="/signin">Sign in</a>
              </li>
              <li>
                <a href="/signup">Sign up</a>
              </li>
            </>
          )}
        </ul>
      </nav>
    </header>
  );
}

/** Pages that need an account send visitors to sign in first. */
function Guarded({ signedIn, page }: { signedIn: boolean; page: () => preact.JSX.Element }) {
  const { route } = useLocation();
  useEffect(() => {
    if (!signedIn) route("/signin", true);
  }, [signedIn]);
  return signedIn ? page() : null;
}

function JobRoute() {
  const { params } = useRoute();
  return <Job id={params.id} />;
}

function Home({ signedIn }: { signedIn: boolean }) {
  const { route } = useLocation();
  useEffect(() => route(signedIn ? "/playground" : "/signin", true), [signedIn]);
  return null;
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        No page here. <a href="/">Start over</a>.
      </p>
    </section>
  );
}

function App() {
  const [signedIn, setSignedIn] = useState(tokens() !== null);
  useEffect(() => onAuthChange(setSignedIn), []);
  return (
    <LocationProvider>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <Nav signedIn={signedIn} />
      <main id="main" tabIndex={-1}>
        <Router>
          <Route path="/" component={() => <Home signedIn={signedIn} />} />
          <Route path="/signin" component={() => <Auth mode="signin" />} />
          <Route path="/signup" component={() => <Auth mode="signup" />} />
          <Route path="/playground" component={() => <Guarded signedIn={signedIn} page={() => <Playground />} />} />
          <Route path="/jobs" component={() => <Guarded signedIn={signedIn} page={() => <History />} />} />
          <Route path="/jobs/:id" component={() => <Guarded signedIn={signedIn} page={() => <JobRoute />} />} />
          <Route path="/account" component={() => <Guarded signedIn={signedIn} page={() => <Account />} />} />
          <Route path="/operator" component={() => <Guarded signedIn={signedIn} page={() => <Operator />} />} />
          <Route default component={NotFound} />
        </Router>
      </main>
    </LocationProvider>
  );
}

render(<App />, document.getElementById("app")!);
