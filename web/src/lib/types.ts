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

export interface MyPermissions {
  owner: boolean;
  admin: boolean;
  permissions: string[];
}

export interface PermissionNode {
  key: string;
  description: string;
  danger: boolean;
}

export interface PermissionCatalogue {
  groups: { group: string; permissions: PermissionNode[] }[];
}

export interface Subuser {
  user_id: string;
  email: string;
  permissions: string[];
}

export interface ActivityEntry {
  id: string;
  ts: number | string;
  actor_id: string;
  action: string;
  server_id: string | null;
  target: string | null;
  source_ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown> | null;
}

export interface FileEntry {
  name: string;
  type: "file" | "directory" | "symlink" | "other" | string;
  size: number;
  mode: string;
  modified: number;
}

export interface DirectoryPage {
  path: string;
  entries: FileEntry[];
  total: number;
  next: string | null;
}

export interface FileContent {
  path: string;
  size: number;
  content_b64: string;
}

export interface AdminLocation {
  id: string;
  name: string;
  nodes?: number;
}

export interface AdminNode {
  id: string;
  name: string;
  location_id: string;
  address: string;
  addresses: string[];
  memory_mb: number;
  disk_mb: number;
  cpu_percent: number | null;
  overallocate_percent: number | null;
  port_start: number;
  port_end: number;
  status: "online" | "offline" | string;
  last_seen: number | null;
  heartbeat_s: number | null;
  runtime: string | null;
  isolated: boolean | null;
  enrolled_at: number | null;
}

export interface NodeInput {
  name: string;
  location_id: string;
  address: string;
  memory_mb: number;
  disk_mb: number;
  port_start: number;
  port_end: number;
}

export interface Enrollment {
  node_id: string;
  token: string;
  expires_at: number;
  command: string;
}

export interface AdminUser {
  id: string;
  email: string;
  admin: boolean;
  suspended: boolean;
  created_at: number | string | null;
}

export interface BlueprintImport {
  blueprint: Record<string, unknown>;
  warnings: string[];
  source_format: string;
  /** Present when the import was saved to the catalogue. */
  version?: unknown;
}

export interface StartupVariable {
  name: string;
  description: string;
  env: string;
  default: string;
  value: string;
  editable: boolean;
  max_length?: number | null;
  rules: Record<string, unknown>;
}

export interface StartupView {
  blueprint_id: string;
  image: string;
  /** Display name -> image reference. */
  images: Record<string, string>;
  startup: string;
  variables: StartupVariable[];
}

export interface Backup {
  id: string;
  name: string;
  status: "pending" | "completed" | "failed" | string;
  size_bytes: number;
  sha256: string | null;
  locked: boolean;
  created_at: number;
}

export interface BackupList {
  backups: Backup[];
  limit: number;
}
