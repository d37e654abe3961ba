import { lazy, Suspense, useEffect, useSyncExternalStore } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { clearTokens, getTokens, subscribeAuth } from "./lib/auth";
import { navigate, parseRoute, paths, usePath, href, PUBLIC_ROUTES } from "./lib/router";
import { useMe } from "./lib/queries";
import { startAutoRefresh } from "./lib/session";
import { Logo } from "./components/Logo";
import { LoginPage } from "./pages/LoginPage";
import { SignUpPage } from "./pages/SignUpPage";
import { ForgotPasswordPage, ResetPasswordPage } from "./pages/PasswordResetPages";
import { ServersPage } from "./pages/ServersPage";
import { NewServerPage } from "./pages/NewServerPage";
import { Button, Spinner } from "./components/ui";

// The server page carries xterm and mqtt.js: load it on demand.
const ServerPage = lazy(() => import("./pages/ServerPage").then((m) => ({ default: m.ServerPage })));
// The admin area: only admins open it.
const AdminPage = lazy(() => import("./pages/admin/AdminPage").then((m) => ({ default: m.AdminPage })));
// The account page carries the QR code encoder.
const AccountPage = lazy(() => import("./pages/AccountPage").then((m) => ({ default: m.AccountPage })));

function useSignedIn(): boolean {
  return useSyncExternalStore(subscribeAuth, () => getTokens() !== null);
}

export function App() {
  const signedIn = useSignedIn();
  const route = parseRoute(usePath());
  const queryClient = useQueryClient();

  const isPublic = PUBLIC_ROUTES.has(route.name);

  // Refresh the access token shortly before it expires, for as long as the app is open.
  useEffect(() => startAutoRefresh(), []);

  // Signed out (sign out, or a session that could not be refreshed): drop cached data and go
  // to the login page. Signed in on a signed-out page (login, sign-up, reset): into the app.
  useEffect(() => {
    if (!signedIn) {
      queryClient.clear();
      if (!isPublic) navigate(paths.login, { replace: true });
    } else if (isPublic) {
      navigate(paths.servers, { replace: true });
    }
  }, [signedIn, isPublic, queryClient]);

  const enter = () => navigate(paths.servers, { replace: true });
  if (!signedIn || isPublic) {
    if (signedIn) return null;
    if (route.name === "signup") return <SignUpPage onSignedIn={enter} />;
    if (route.name === "forgot") return <ForgotPasswordPage />;
    if (route.name === "reset") return <ResetPasswordPage />;
    return <LoginPage onSignedIn={enter} />;
  }

  return (
    <div className="min-h-dvh">
      <Header route={route.name} />
      <main className="mx-auto w-full max-w-6xl px-4 py-6 sm:px-6">
        {route.name === "servers" && <ServersPage />}
        {route.name === "new-server" && <NewServerPage />}
        {route.name === "account" && (
          <Suspense fallback={<Spinner label="Loading" />}>
            <AccountPage />
          </Suspense>
        )}
        {route.name === "server" && (
          <Suspense fallback={<Spinner label="Loading" />}>
            <ServerPage id={route.id} tab={route.tab} />
          </Suspense>
        )}
        {route.name === "admin" && (
          <Suspense fallback={<Spinner label="Loading" />}>
            <AdminPage section={route.section} />
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

function Header({ route }: { route: string }) {
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
          {me.data?.admin && (
            <a
              href={href(paths.admin("nodes"))}
              data-testid="admin-link"
              aria-current={route === "admin" ? "page" : undefined}
              className="shrink-0 rounded-md px-3 py-2 text-sm font-medium text-zinc-300 hover:bg-zinc-800 hover:text-white focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-400 aria-[current=page]:bg-zinc-800 aria-[current=page]:text-white"
            >
              Admin
            </a>
          )}
          <a
            href={href(paths.account)}
            data-testid="account-link"
            aria-current={route === "account" ? "page" : undefined}
            className="shrink-0 rounded-md px-3 py-2 text-sm font-medium text-zinc-300 hover:bg-zinc-800 hover:text-white focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-400 aria-[current=page]:bg-zinc-800 aria-[current=page]:text-white"
          >
            Account
          </a>
          <Button variant="ghost" data-testid="sign-out" onClick={() => clearTokens()}>
            Sign out
          </Button>
        </div>
      </div>
    </header>
  );
}
