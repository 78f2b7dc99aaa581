"""A Flask application; Flask and its dependencies are vendored into app/vendor
by examples/vendor.sh (they are not committed)."""

from flask import Flask, render_template_string, request

app = Flask(__name__)

PAGE = """<!doctype html>
<title>{{ title }}</title>
<h1>{{ title }}</h1>
<p>Hello, {{ name }}! Flask is running inside a WebAssembly sandbox.</p>
"""


@app.route("/")
def index():
    return render_template_string(PAGE, title="mod_wasmpy + Flask", name=request.args.get("name", "world"))


@app.route("/json", methods=["GET", "POST"])
def as_json():
    return {"method": request.method, "args": request.args, "data": request.get_data(as_text=True)}


application = app
