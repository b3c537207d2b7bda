"""Re-record ``shipped_chats.json`` after the shipped ``mimo-tiny`` weights change (not a test):

    python tests/infer/record_shipped_chats.py

It asks the same chats (images and record ids kept from the file) with the current code and
model and writes their answers, masks (COCO RLE) and scores. Run it only when the weights
changed on purpose: ``test_chat_path.py`` guards that code changes keep the answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from test_chat_path import CHATS, HELDOUT, _question, _records  # noqa: E402

from mimo.core import rle  # noqa: E402
from mimo.core.files import atomic_write_text  # noqa: E402
from mimo.infer.predictor import Predictor, packaged_model_dir  # noqa: E402


def main() -> None:
    old = json.loads(CHATS.read_text())
    records = _records()
    predictor = Predictor.from_pretrained(packaged_model_dir())
    chats = []
    for chat in old["chats"]:
        session = predictor.chat(str(HELDOUT / chat["image"]))
        turns = []
        for turn in chat["turns"]:
            question, prompts = _question(records[turn["record"]])
            prediction = session.ask(question, **prompts)
            turns.append(
                {
                    "record": turn["record"],
                    "answer": prediction.answer,
                    "masks": [dict(rle.encode(s.mask).model_dump()) for s in prediction.segments],
                    "scores": [round(float(s.score), 6) for s in prediction.segments],
                }
            )
        chats.append({"image": chat["image"], "turns": turns})
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    about = (
        "3-turn chats of the shipped mimo-tiny on held-out images (ChatSession.ask with each record's "
        f"question and its visual prompt), recorded at commit {commit} with "
        "tests/infer/record_shipped_chats.py; masks as COCO RLE"
    )
    atomic_write_text(CHATS, json.dumps({"about": about, "chats": chats}, indent=1) + "\n")
    print(f"wrote {CHATS}: {sum(len(c['turns']) for c in chats)} turns")


if __name__ == "__main__":
    main()
