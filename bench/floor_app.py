"""The floor for the load benchmark: a bare FastAPI endpoint that inserts one row.

Same database, same driver, same server (uvicorn, same worker count) as the product; no
templates, no validation, no business rules. `DIPLOMAT_DATABASE_URL` names the database.
"""

import gc
import os

from fastapi import FastAPI
from sqlalchemy import text

from app.db import make_engine, writer_engine

engine = make_engine(os.environ["DIPLOMAT_DATABASE_URL"])
writer = writer_engine(engine)
app = FastAPI()


@app.post("/insert")
def insert() -> dict[str, bool]:
    """One row in one transaction: what any write request costs at the least."""
    with writer.begin() as connection:
        connection.execute(text("INSERT INTO bench_floor (note) VALUES ('x')"))
    return {"ok": True}


# Tuned as the service's process is (`app.main.settle_heap`): what is built at start-up is
# left out of the garbage collector's full passes.
gc.collect()
gc.freeze()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
