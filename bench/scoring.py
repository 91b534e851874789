"""What scoring a micro-batch costs: scikit-learn's `predict_proba` against `models.compiled`.

    .venv/bin/python -m bench.scoring [--train 5000] [--seconds 2]

The two quick models as `driftline up` trains them (`models.train.Candidate`, the grid's larger
settings, one thread), on real tweets, score micro-batches of 1, 2 and 100 held-out texts
through the pipeline's own `predict_proba` (the baseline) and through the compiled pipeline;
the inference flow sees 1-2 texts a micro-batch at 200 requests/s, 100 from `POST /inferences`.
Each figure is the best of 5 rounds of `--seconds` / 5 of calls; the ratio is baseline /
compiled. Every compiled score is checked against the baseline first.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from models.compiled import compile_pipeline
from models.datasets import sentiment_binary
from models.features import tfidf
from models.serving import with_threads
from models.train import Candidate

BATCHES = (1, 2, 100)


def per_call_us(
    score: Callable[[Sequence[str]], object], texts: Sequence[str], seconds: float
) -> float:
    """Best of 5 rounds: microseconds per call."""
    best = float("inf")
    for _ in range(5):
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds / 5:
            score(texts)
            calls += 1
        best = min(best, elapsed / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=5000, help="Tweets to train on.")
    parser.add_argument("--seconds", type=float, default=2.0, help="Per figure.")
    args = parser.parse_args()

    data = sentiment_binary().sample(frac=1.0, random_state=0).reset_index(drop=True)
    texts, labels = data["text"].tolist(), data["label"].to_numpy()
    train, held_out = texts[: args.train], texts[args.train : args.train + 1000]
    settings: dict[str, dict[str, Any]] = {
        "logreg": {"features__ngram_range": (1, 2), "clf__C": 2.0},
        "xgboost": {"clf__max_depth": 8},
    }
    print(
        f"driftline scoring: {args.train:,} tweets to train on, "
        f"best of 5 x {args.seconds / 5:.1f} s a figure"
    )
    for algorithm, params in settings.items():
        candidate = Candidate(algorithm, "tfidf")  # type: ignore[arg-type]
        pipeline = Pipeline(
            [("features", tfidf()), ("clf", candidate.classifier(labels[: args.train]))]
        )
        pipeline.set_params(**params).fit(train, labels[: args.train])
        pipeline = with_threads(pipeline, 1)
        compiled = compile_pipeline(pipeline)
        assert compiled is not None, f"{candidate.name} did not compile"
        baseline = pipeline.predict_proba(held_out)[:, 1]
        gap = float(np.abs(compiled.predict_proba(held_out) - baseline).max())
        print(f"{candidate.name}  (largest difference from scikit-learn: {gap:.1e})")
        for size in BATCHES:
            batch = held_out[:size]
            before = per_call_us(pipeline.predict_proba, batch, args.seconds)
            after = per_call_us(compiled.predict_proba, batch, args.seconds)
            print(
                f"  {size:3d} text{'s' if size > 1 else ' '} a call"
                f"   scikit-learn {before:8,.0f} us   compiled {after:8,.0f} us"
                f"   ({before / after:4.1f}x)"
            )


if __name__ == "__main__":
    main()
