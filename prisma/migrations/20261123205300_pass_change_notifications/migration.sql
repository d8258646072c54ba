-- Every server instance remembers, per pass, what Wallet's requests check (authentication token, version,
-- Last-Modified), and forgets a pass when this channel names it (src/db/pass-changes.ts). A trigger, so that every
-- writer is covered, raw SQL and other tools included. Inserts notify too: instances also remember that a pass does
-- not exist (so an unknown pass answers as fast as a wrong token), and a renamed pass is new under its new key.
-- PostgreSQL delivers a NOTIFY only once its transaction has committed, and in commit order. The payload is the
-- pass's key as Wallet's URLs name it: type, newline, serial (Wallet's identifiers hold no control characters).
CREATE FUNCTION notify_pass_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    PERFORM pg_notify('pass_changes', OLD.pass_type_identifier || E'\n' || OLD.serial_number);
  END IF;
  -- Within one transaction PostgreSQL drops a notification equal to one already sent, so an update notifies once.
  IF TG_OP <> 'DELETE' THEN
    PERFORM pg_notify('pass_changes', NEW.pass_type_identifier || E'\n' || NEW.serial_number);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER passes_notify_change
  AFTER INSERT OR UPDATE OF pass_type_identifier, serial_number, authentication_token, version, last_modified
  OR DELETE ON passes FOR EACH ROW EXECUTE FUNCTION notify_pass_change();
