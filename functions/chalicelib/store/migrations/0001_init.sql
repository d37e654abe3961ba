-- StellarStack store, PostgreSQL backend: tables, indexes, row-level security.
--
-- Every record keeps its full JSON in `data` plus the columns that keys, indexes and policies
-- need, and a `version` for optimistic locking. Text keys use the "C" collation so that list
-- order (and therefore cursors) is bytewise, exactly as in DynamoDB.
--
-- Tenancy: the application connects as `stellar_app` (not the owner, not a superuser), and
-- each transaction names its actor: `set_config('stellar.user_id', uid, true)` for a user, or
-- `select stellar_admin_bypass(reason)` for an admin bypass. The bypass is a row in
-- `admin_bypass` keyed by the transaction id; the app role cannot write that table except
-- through the function, so every bypass is recorded and none can be forged with a setting.

create table users (
  id       text collate "C" primary key,
  email    text not null unique,
  version  integer not null,
  data     jsonb not null
);

create table locations (
  id       text collate "C" primary key,
  name     text collate "C" not null,
  version  integer not null,
  data     jsonb not null
);
create index locations_by_name on locations (name, id);

create table nodes (
  id          text collate "C" primary key,
  location_id text collate "C" not null,
  version     integer not null,
  data        jsonb not null
);
create index nodes_by_location on nodes (location_id, id);

create table servers (
  id        text collate "C" primary key,
  owner_id  text collate "C" not null,
  node_id   text collate "C" not null,
  state_seq bigint not null default -1,
  version   integer not null,
  data      jsonb not null
);
create index servers_by_owner on servers (owner_id, id);
create index servers_by_node on servers (node_id, id);

create table subusers (
  server_id text collate "C" not null references servers (id) on delete cascade,
  user_id   text collate "C" not null,
  version   integer not null,
  data      jsonb not null,
  primary key (server_id, user_id)
);
create index subusers_by_member on subusers (user_id, server_id);

create table allocations (
  node_id   text collate "C" not null,
  ip        text collate "C" not null,
  port      integer not null,
  server_id text collate "C" not null references servers (id) on delete cascade,
  version   integer not null,
  data      jsonb not null,
  primary key (node_id, ip, port)
);
create index allocations_by_server on allocations (server_id);

create table grants (
  username   text collate "C" primary key,
  user_id    text collate "C" not null,
  server_id  text collate "C" not null,
  expires_at double precision not null,
  expires    double precision not null,
  version    integer not null,
  data       jsonb not null
);
create index grants_by_expiry on grants (expires_at);

create table audit (
  server_key text collate "C" not null,  -- server id, or 'global'
  sk         text collate "C" not null,  -- ts#id, as in DynamoDB
  server_id  text collate "C",
  actor_id   text collate "C" not null,
  version    integer not null,
  data       jsonb not null,
  primary key (server_key, sk)
);

create table idempotency (
  user_id text collate "C" not null,
  key     text collate "C" not null,
  expires double precision not null,
  version integer not null,
  data    jsonb not null,
  primary key (user_id, key)
);

create table rate_counters (
  bucket       text collate "C" not null,
  window_start bigint not null,
  hits         integer not null,
  expires      double precision not null,
  primary key (bucket, window_start)
);

create table admin_bypass (
  id     bigserial primary key,
  xid    xid8 not null,
  reason text not null,
  role   text not null default current_user,
  at     timestamptz not null default now()
);
create index admin_bypass_by_xid on admin_bypass (xid);

-- The acting user of this transaction (NULL when none was set).
create function stellar_uid() returns text language sql stable
as $$ select nullif(current_setting('stellar.user_id', true), '') $$;

-- True when this transaction opened an admin bypass through stellar_admin_bypass().
create function stellar_is_admin() returns boolean language sql stable security definer
set search_path = public, pg_temp
as $$ select exists (select 1 from admin_bypass where xid = pg_current_xact_id_if_assigned()) $$;

create function stellar_admin_bypass(reason text) returns void language plpgsql security definer
set search_path = public, pg_temp
as $$
begin
  if coalesce(btrim(reason), '') = '' then
    raise exception 'an admin bypass needs a reason';
  end if;
  insert into admin_bypass (xid, reason, role) values (pg_current_xact_id(), reason, session_user);
end
$$;

-- Owner or subuser of the server? Security definer so that the servers and subusers
-- policies can ask it of each other without recursing.
create function stellar_can_see_server(sid text) returns boolean language sql stable security definer
set search_path = public, pg_temp
as $$
  select exists (select 1 from servers where id = sid and owner_id = stellar_uid())
      or exists (select 1 from subusers where server_id = sid and user_id = stellar_uid())
$$;

create function stellar_owns_server(sid text) returns boolean language sql stable security definer
set search_path = public, pg_temp
as $$ select exists (select 1 from servers where id = sid and owner_id = stellar_uid()) $$;

alter table users enable row level security;
create policy users_self on users
  using (id = stellar_uid() or stellar_is_admin())
  with check (id = stellar_uid() or stellar_is_admin());

alter table locations enable row level security;
create policy locations_read on locations for select using (true);
create policy locations_admin on locations using (stellar_is_admin()) with check (stellar_is_admin());

alter table nodes enable row level security;
create policy nodes_read on nodes for select using (true);
create policy nodes_admin on nodes using (stellar_is_admin()) with check (stellar_is_admin());

alter table servers enable row level security;
create policy servers_see on servers for select
  using (owner_id = stellar_uid() or stellar_is_admin() or stellar_can_see_server(id));
create policy servers_create on servers for insert
  with check (owner_id = stellar_uid() or stellar_is_admin());
create policy servers_change on servers for update
  using (owner_id = stellar_uid() or stellar_is_admin() or stellar_can_see_server(id));
create policy servers_remove on servers for delete
  using (owner_id = stellar_uid() or stellar_is_admin());

alter table subusers enable row level security;
create policy subusers_see on subusers for select
  using (user_id = stellar_uid() or stellar_is_admin() or stellar_owns_server(server_id));
create policy subusers_manage on subusers
  using (stellar_is_admin() or stellar_owns_server(server_id))
  with check (stellar_is_admin() or stellar_owns_server(server_id));

alter table allocations enable row level security;
create policy allocations_tenant on allocations
  using (stellar_is_admin() or stellar_can_see_server(server_id))
  with check (stellar_is_admin() or stellar_owns_server(server_id));

alter table grants enable row level security;
create policy grants_tenant on grants
  using (stellar_is_admin() or user_id = stellar_uid())
  with check (stellar_is_admin() or (user_id = stellar_uid() and stellar_can_see_server(server_id)));

alter table audit enable row level security;
create policy audit_see on audit for select
  using (stellar_is_admin()
         or (server_id is not null and stellar_can_see_server(server_id))
         or (server_id is null and actor_id = stellar_uid()));
create policy audit_append on audit for insert
  with check (stellar_is_admin()
              or (actor_id = stellar_uid() and (server_id is null or stellar_can_see_server(server_id))));

alter table idempotency enable row level security;
create policy idempotency_self on idempotency
  using (stellar_is_admin() or user_id = stellar_uid())
  with check (stellar_is_admin() or user_id = stellar_uid());

-- The application role: data access only, audit append-only, bypass only through the function.
grant usage on schema public to stellar_app;
grant select, insert, update, delete on users, locations, nodes, servers, subusers, allocations, grants,
  idempotency, rate_counters to stellar_app;
grant select, insert on audit to stellar_app;
revoke all on function stellar_admin_bypass(text) from public;
grant execute on function stellar_admin_bypass(text) to stellar_app;
