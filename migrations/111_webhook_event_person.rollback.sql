ALTER TABLE zoom_webhook_events DROP COLUMN participant_person;
