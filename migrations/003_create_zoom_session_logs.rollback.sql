DROP TABLE zoom_session_logs;
