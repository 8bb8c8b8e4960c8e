import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { LocationProvider, Route, Router, useLocation, useRoute } from "preact-iso";
import { onAuthChange, signOut, tokens } from "./api";
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

function Nav({ signedIn }: { signedIn: boolean }) {
  const { path, route } = useLocation();
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
          <Route default component={NotFound} />
        </Router>
      </main>
    </LocationProvider>
  );
}

render(<App />, document.getElementById("app")!);
