-- The agent page's sessions carry the account's role (agent | supervisor), so that every
-- instance sharing the table refuses the supervisor view to agents alike. Sessions made before
-- roles existed are agents' (nobody gains a right by omission).
ALTER TABLE agent_sessions ADD COLUMN role TEXT NOT NULL DEFAULT 'agent';
