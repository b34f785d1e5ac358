"""Independent implementation of the random-user transform, for tests.

Reads a random-user API response (file given as argument) and prints the
records the lake should store, as JSON, without the provenance fields.
"""
import hashlib
import json
import sys

body = json.load(open(sys.argv[1], encoding="utf-8"))
out = []
for u in body["results"]:
    loc = u["location"]
    pc = loc["postcode"]
    pc_text = pc if isinstance(pc, str) else json.dumps(pc)
    out.append({
        "user_id": u["login"]["uuid"].strip(),
        "name": f'{u["name"]["title"].strip()}. {u["name"]["first"].strip()} {u["name"]["last"].strip()}',
        "gender": u["gender"],
        "address": f'{loc["street"]["number"]}, {loc["street"]["name"].strip()}'.strip(),
        "city": loc["city"].strip(),
        "nation": loc["country"].strip(),
        "zip": hashlib.md5(pc_text.encode("utf-8")).hexdigest(),
        "latitude": float(loc["coordinates"]["latitude"]),
        "longitude": float(loc["coordinates"]["longitude"]),
        "email": u["email"].strip(),
    })
json.dump(out, sys.stdout, ensure_ascii=False)
