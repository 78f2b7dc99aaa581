"""A publisher module behind __auth__ and __access__ (tests/tests/mplib.rs)."""

__auth_realm__ = "admin area"


def __auth__(req, user, password):
    return password == "secret" and user in ("alice", "mallory")


def __access__(req, user):
    return user != "mallory"


def index(req):
    return "admin " + req.user


def report():
    return "report"
