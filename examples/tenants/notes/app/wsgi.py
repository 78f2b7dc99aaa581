"""A tiny notes service storing its data with sqlite3 in the read-write
mount /data (see policy.toml)."""

import json
import sqlite3

DB = "/data/notes.sqlite3"


def _db():
    conn = sqlite3.connect(DB)
    conn.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    return conn


def application(environ, start_response):
    conn = _db()
    try:
        if environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            text = environ["wsgi.input"].read(length).decode("utf-8")
            with conn:
                conn.execute("INSERT INTO notes (text) VALUES (?)", (text,))
        notes = [row[0] for row in conn.execute("SELECT text FROM notes ORDER BY id")]
    finally:
        conn.close()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"notes": notes}).encode()]
