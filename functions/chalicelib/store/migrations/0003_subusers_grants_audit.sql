-- Subuser management by subusers, revocation lookups, the admins' activity log, invites by email.
--
-- Subusers: until now only the owner (or an admin) could write subuser rows. A subuser holding
-- user.create / user.update / user.delete may now do the matching write, and one holding any
-- user.* node may see the server's other subusers; the service layer still checks that nobody
-- grants a node they lack. Grants get an index by server and user (revoking a user's live
-- console access when their permissions change or the server goes), the audit log an index
-- by time (the admins' log of everything, newest first). Invites look an account up by email
-- through a security definer function that returns only the id, never the profile.

create function stellar_holds(sid text, perms text[]) returns boolean language sql stable security definer
set search_path = public, pg_temp
as $$
  select exists (select 1 from subusers
                  where server_id = sid and user_id = stellar_uid() and (data->'permissions') ?| perms)
$$;

drop policy subusers_manage on subusers;
drop policy subusers_see on subusers;
create policy subusers_see on subusers for select
  using (user_id = stellar_uid() or stellar_is_admin() or stellar_owns_server(server_id)
         or stellar_holds(server_id, array['user.read', 'user.create', 'user.update', 'user.delete']));
create policy subusers_insert on subusers for insert
  with check (stellar_is_admin() or stellar_owns_server(server_id) or stellar_holds(server_id, array['user.create']));
create policy subusers_update on subusers for update
  using (stellar_is_admin() or stellar_owns_server(server_id) or stellar_holds(server_id, array['user.update']))
  with check (stellar_is_admin() or stellar_owns_server(server_id) or stellar_holds(server_id, array['user.update']));
create policy subusers_delete on subusers for delete
  using (stellar_is_admin() or stellar_owns_server(server_id) or stellar_holds(server_id, array['user.delete']));

create index grants_by_server on grants (server_id, user_id, username);
create index audit_by_time on audit (sk);

create function stellar_user_id_by_email(p_email text) returns text language sql stable security definer
set search_path = public, pg_temp
as $$ select id from users where email = lower(p_email) $$;

revoke all on function stellar_holds(text, text[]) from public;
grant execute on function stellar_holds(text, text[]) to stellar_app;
revoke all on function stellar_user_id_by_email(text) from public;
grant execute on function stellar_user_id_by_email(text) to stellar_app;
