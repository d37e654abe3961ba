export type ServerStatus =
  | "installing"
  | "install_failed"
  | "offline"
  | "starting"
  | "running"
  | "stopping";

export interface Port {
  ip: string;
  port: number;
  protocol: string;
}

export interface Server {
  id: string;
  name: string;
  status: ServerStatus | string;
  node_id: string;
  blueprint_id: string;
  location_id: string;
  ports: Port[];
  created_at: string;
}

export interface BlueprintVariable {
  name: string;
  description: string;
  env: string;
  default: string;
  user_editable: boolean;
  pattern?: string | null;
  max_length: number;
}

export interface Blueprint {
  id: string;
  name: string;
  description: string;
  category: string;
  variables: BlueprintVariable[];
}

export interface Location {
  id: string;
  name: string;
}

export interface Me {
  id: string;
  email: string;
  admin: boolean;
}

export interface LoginResponse {
  access_token: string;
  id_token: string;
  refresh_token: string;
  expires_in: number;
}

/** A refresh answers without a new refresh token. */
export interface RefreshResponse {
  access_token: string;
  id_token: string;
  refresh_token?: string;
  expires_in: number;
}

/** POST /auth/login: tokens, or a two-factor challenge to answer with a code. */
export type LoginAnswer = LoginResponse | { challenge: "totp"; session: string };

export interface SignUpResponse {
  email: string;
  confirmed: boolean;
}

export interface TotpSetup {
  secret: string;
  otpauth_uri: string;
}

export type PowerAction = "start" | "stop" | "restart" | "kill";

export interface ConsoleGrant {
  url: string;
  username: string;
  password: string;
  client_id: string;
  expires_at: number;
  topics: { console: string; state: string; stats: string };
}

export interface ConsoleMessage {
  v: number;
  ts: number | string;
  lines: string[];
  backlog?: boolean;
  dropped?: number;
  source?: "server" | "install" | "agent";
}

export interface StateMessage {
  v: number;
  ts: number | string;
  server_id: string;
  state: string;
  seq: number;
  detail?: string | null;
}

export interface StatsMessage {
  v: number;
  ts: number | string;
  cpu_percent: number;
  memory_bytes: number;
  memory_limit_bytes: number;
  rx_bytes: number;
  tx_bytes: number;
  uptime_s: number;
}
