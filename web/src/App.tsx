import { lazy, Suspense, useEffect, useSyncExternalStore } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { clearTokens, getTokens, subscribeAuth } from "./lib/auth";
import { navigate, parseRoute, paths, usePath, href } from "./lib/router";
import { useMe } from "./lib/queries";
import { LoginPage, Logo } from "./pages/LoginPage";
import { ServersPage } from "./pages/ServersPage";
import { NewServerPage } from "./pages/NewServerPage";
import { Button, Spinner } from "./components/ui";

// The server page carries xterm and mqtt.js: load it on demand.
const ServerPage = lazy(() => import("./pages/ServerPage").then((m) => ({ default: m.ServerPage })));

function useSignedIn(): boolean {
  return useSyncExternalStore(subscribeAuth, () => getTokens() !== null);
}

export function App() {
  const signedIn = useSignedIn();
  const route = parseRoute(usePath());
  const queryClient = useQueryClient();

  // Signed out (sign out, or any 401): drop cached data and go to the login page.
  useEffect(() => {
    if (!signedIn) {
      queryClient.clear();
      if (route.name !== "login") navigate(paths.login, { replace: true });
    } else if (route.name === "login") {
      navigate(paths.servers, { replace: true });
    }
  }, [signedIn, route.name, queryClient]);

  if (!signedIn || route.name === "login") {
    return signedIn ? null : <LoginPage onSignedIn={() => navigate(paths.servers, { replace: true })} />;
  }

  return (
    <div className="min-h-dvh">
      <Header />
      <main className="mx-auto w-full max-w-6xl px-4 py-6 sm:px-6">
        {route.name === "servers" && <ServersPage />}
        {route.name === "new-server" && <NewServerPage />}
        {route.name === "server" && (
          <Suspense fallback={<Spinner label="Loading" />}>
            <ServerPage id={route.id} />
          </Suspense>
        )}
        {route.name === "not-found" && (
          <div className="space-y-2">
            <h1 className="text-xl font-semibold text-white">Page not found</h1>
            <a className="text-indigo-300 hover:underline" href={href(paths.servers)}>
              Back to servers
            </a>
          </div>
        )}
      </main>
    </div>
  );
}

function Header() {
  const me = useMe();
  return (
    <header className="sticky top-0 z-10 border-b border-zinc-800 bg-zinc-950/85 backdrop-blur">
      <div className="mx-auto flex h-14 w-full max-w-6xl items-center justify-between gap-3 px-4 sm:px-6">
        <a
          href={href(paths.servers)}
          className="flex items-center gap-2 font-semibold tracking-tight text-white"
        >
          <Logo className="size-6" />
          <span>StellarStack</span>
        </a>
        <div className="flex min-w-0 items-center gap-2 sm:gap-3">
          {me.data && (
            <span className="flex min-w-0 items-center gap-2 text-sm text-zinc-400">
              <span className="truncate" data-testid="user-email" title={me.data.email}>
                {me.data.email}
              </span>
              {me.data.admin && (
                <span className="hidden rounded bg-indigo-500/15 px-1.5 py-0.5 text-xs text-indigo-300 sm:inline">
                  admin
                </span>
              )}
            </span>
          )}
          <Button variant="ghost" data-testid="sign-out" onClick={() => clearTokens()}>
            Sign out
          </Button>
        </div>
      </div>
    </header>
  );
}
