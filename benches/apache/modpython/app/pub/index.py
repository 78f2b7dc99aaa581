"""The publisher row of benches/apache/run.sh: /mpy/pub/hello."""


def hello():
    return "Hello, World!"
