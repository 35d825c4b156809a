-- s2_bound.sql - the bound of S2 (GET /api/v1/users?limit=20): the tenant
-- transaction the server sends, as one pipeline ending in one Sync (one
-- round trip, one implicit transaction), like src/db/tx.c.
-- Rendered by bench/lib/stmts.py: each "@stmt" line becomes that statement's
-- SQL from src/ with $n -> the n-th argument. Variables: :org, :user (the
-- organisation picked for this transaction and its token user), :need_member
-- = 'member', :page_limit = 21 (limit 20 + 1, as users.c asks), NULL = no cursor.
\startpipeline
-- @stmt nx_tenant_begin :org :user :need_member
-- @stmt api_users_list :org NULL NULL :page_limit
\endpipeline
