-- 005_pending_keys: the per-destination intake bound counts resolved
-- addresses, not spellings.
--
-- host_pending was keyed on callback_host, the host as the client spelled
-- it: "[::1]", "[0::1]" and "[0000::0001]" were three destinations, and so
-- were "127.0.0.1" and "localhost", or every name under a wildcard DNS
-- record. A job now carries pending_keys, a JSON array of the keys it counts
-- under (lib/ssrf.c, ssrf_pending_keys): its host name normalised and every
-- address it resolved to in canonical form (IPv4 /32, IPv6 /64). The job is
-- counted once under each key, and intake refuses it when any of its keys
-- is at CONSUMA_MAX_PENDING_PER_HOST.
--
-- Rows written before this migration have no pending_keys: they stay
-- counted under callback_host alone, as they were, so the counters stay
-- consistent across the upgrade without a rebuild.
ALTER TABLE requests ADD COLUMN pending_keys TEXT; -- JSON array of strings

DROP TRIGGER IF EXISTS requests_enqueued;
CREATE TRIGGER requests_enqueued AFTER INSERT ON requests
WHEN NEW.mode = 'async' AND NEW.finished_at IS NULL
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'queue_depth';
    -- once per element (no DISTINCT: its temporary b-tree per insert
    -- costs more than the upserts; a repeated key is counted twice here and
    -- taken off twice below, so the counters stay exact for any array)
    INSERT INTO host_pending (host, n)
        SELECT value, 1
        FROM json_each(coalesce(NEW.pending_keys, json_array(coalesce(NEW.callback_host, ''))))
        WHERE true
        ON CONFLICT (host) DO UPDATE SET n = n + 1;
    INSERT INTO client_pending (client, n) VALUES (coalesce(NEW.client_addr, ''), 1)
        ON CONFLICT (client) DO UPDATE SET n = n + 1;
END;

DROP TRIGGER IF EXISTS requests_finished;
CREATE TRIGGER requests_finished AFTER UPDATE OF finished_at ON requests
WHEN NEW.mode = 'async' AND OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL
BEGIN
    UPDATE counters SET value = value - 1 WHERE name = 'queue_depth';
    UPDATE host_pending SET n = n - (SELECT count(*)
        FROM json_each(coalesce(NEW.pending_keys, json_array(coalesce(NEW.callback_host, ''))))
        WHERE value = host)
    WHERE host IN (SELECT value
        FROM json_each(coalesce(NEW.pending_keys, json_array(coalesce(NEW.callback_host, '')))));
    DELETE FROM host_pending WHERE n <= 0 AND host IN (SELECT value
        FROM json_each(coalesce(NEW.pending_keys, json_array(coalesce(NEW.callback_host, '')))));
    UPDATE client_pending SET n = n - 1 WHERE client = coalesce(NEW.client_addr, '');
    DELETE FROM client_pending WHERE client = coalesce(NEW.client_addr, '') AND n <= 0;
END;
