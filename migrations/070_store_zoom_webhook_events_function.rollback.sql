DROP FUNCTION store_zoom_webhook_events(
    TEXT[], TEXT[], TEXT[], TIMESTAMPTZ[], TEXT[], TEXT[], TEXT[], BYTEA[], JSONB[]
);
