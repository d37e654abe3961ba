-- Blueprint versions, schedules, backups, API keys; retention of the admin-bypass trail.
--
-- Tenancy as in 0001: schedules and backups hang off a server and follow its visibility;
-- API keys are visible only to their user (authentication finds a key through a security
-- definer function that needs the secret's hash, so no acting user is required for that);
-- blueprint versions are readable by everyone and written only under the audited admin
-- bypass, and never rewritten: the app role has no UPDATE or DELETE on them at all.

create table blueprint_versions (
  blueprint_id text collate "C" not null,
  number       integer not null check (number > 0),
  version      integer not null,
  data         jsonb not null,
  primary key (blueprint_id, number)
);

create table schedules (
  server_id text collate "C" not null references servers (id) on delete cascade,
  id        text collate "C" not null,
  enabled   boolean not null,
  next_run  double precision,
  version   integer not null,
  data      jsonb not null,
  primary key (server_id, id)
);
-- The ticker's access pattern: what is due, earliest first; only rows that can come due.
create index schedules_due on schedules (next_run) where enabled and next_run is not null;

create table backups (
  server_id text collate "C" not null references servers (id) on delete cascade,
  id        text collate "C" not null,
  locked    boolean not null,
  version   integer not null,
  data      jsonb not null,
  primary key (server_id, id)
);

create table api_keys (
  prefix     text collate "C" primary key,
  user_id    text collate "C" not null,
  key_hash   text not null,
  expires    double precision,
  revoked_at double precision,
  last_used  double precision,
  version    integer not null,
  data       jsonb not null
);
create index api_keys_by_user on api_keys (user_id, prefix);

create index admin_bypass_by_age on admin_bypass (at);

alter table blueprint_versions enable row level security;
create policy blueprint_versions_read on blueprint_versions for select using (true);
create policy blueprint_versions_admin on blueprint_versions for insert with check (stellar_is_admin());

alter table schedules enable row level security;
create policy schedules_tenant on schedules
  using (stellar_is_admin() or stellar_can_see_server(server_id))
  with check (stellar_is_admin() or stellar_can_see_server(server_id));

alter table backups enable row level security;
create policy backups_tenant on backups
  using (stellar_is_admin() or stellar_can_see_server(server_id))
  with check (stellar_is_admin() or stellar_can_see_server(server_id));

alter table api_keys enable row level security;
create policy api_keys_self on api_keys
  using (stellar_is_admin() or user_id = stellar_uid())
  with check (stellar_is_admin() or user_id = stellar_uid());

-- Authentication by API key: the row comes back only to a caller holding the secret (its hash),
-- and only while live. (version, data, last_used) as the store reads them.
create function stellar_api_key_lookup(p_prefix text, p_hash text, p_now double precision)
returns table (version integer, data jsonb, last_used double precision)
language sql stable security definer
set search_path = public, pg_temp
as $$
  select k.version, k.data, k.last_used from api_keys k
   where k.prefix = p_prefix and k.key_hash = p_hash and k.revoked_at is null
     and (k.expires is null or k.expires > p_now)
$$;

-- Retention: the app role cannot delete from admin_bypass, but the sweeper may prune rows
-- older than a number of days; never younger than one day, so the recent trail cannot be wiped.
create function stellar_prune_admin_bypass(keep_days integer) returns integer
language plpgsql security definer
set search_path = public, pg_temp
as $$
declare
  n integer;
begin
  if keep_days is null or keep_days < 1 then
    raise exception 'admin bypass retention must keep at least one day';
  end if;
  delete from admin_bypass where at < now() - make_interval(days => keep_days);
  get diagnostics n = row_count;
  return n;
end
$$;

grant select, insert on blueprint_versions to stellar_app;
grant select, insert, update, delete on schedules, backups, api_keys to stellar_app;
revoke all on function stellar_api_key_lookup(text, text, double precision) from public;
grant execute on function stellar_api_key_lookup(text, text, double precision) to stellar_app;
revoke all on function stellar_prune_admin_bypass(integer) from public;
grant execute on function stellar_prune_admin_bypass(integer) to stellar_app;
