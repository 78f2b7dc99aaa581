import os
import sys

print("Content-Type: text/plain")
print("X-Cgi: yes")
print()
print("method=%s query=%s" % (os.environ.get("REQUEST_METHOD"), os.environ.get("QUERY_STRING")))
body = sys.stdin.read()
print("body=%s" % body)
