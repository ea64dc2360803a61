"""The learned triage: which matter (事项) a free-text report is, with a calibrated probability.

Character n-grams (robust to typos, dialect and unseen words) and jieba words, weighted by TF-IDF,
feed a multinomial logistic regression (scikit-learn). Its probabilities are calibrated by one
temperature fitted on out-of-fold predictions (the model never scores text it trained on), and the
manual-queue threshold is chosen on those same out-of-fold predictions. The folds leave out whole
writers (one corpus file each), so calibration sees text written independently of what it trained on.

The model is an artifact built reproducibly from the labelled corpus in the repository
(`onewindow router train`): same corpus and catalogue → same bytes → same sha256. Its version is
derived from that hash. Loading checks the hash against the manifest before anything is unpickled.

Plain Python over scikit-learn: no broker, no database.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

REFERENCE = Path(__file__).parent / "reference" / "triage"
CORPUS = Path(__file__).parent / "corpus"
# Bumped when features or training change in a way that makes older artifacts incomparable.
TRAINING_RECIPE = "char1-4+jieba+lr-c8+temperature.v1"
FOLDS = 5
SEED = 20261202
# Out-of-fold share of all cases that may be sent confidently to the wrong unit kind.
CONFIDENT_WRONG_BUDGET = 0.01


# ---------------------------------------------------------------- text


_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """One form for the same words: NFKC (full-width → half-width), lower case, digit runs as '0'."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", _DIGITS.sub("0", text)).strip()


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tk = jieba.Tokenizer()
    tk.initialize()
    return tk


def words(text: str) -> list[str]:
    """jieba words of a normalised text (no HMM: deterministic and fast), without spaces and punctuation."""
    return [w for w in _jieba().lcut(text, HMM=False) if w.strip() and not unicodedata.category(w[0]).startswith("P")]


# ---------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Example:
    """One labelled report."""

    text: str
    category: str
    channel: str = "hotline"
    source: str = ""


class CorpusError(ValueError):
    """A corpus line that is not a labelled example of a catalogued category."""


def read_examples(paths: Iterable[Path], categories: set[str]) -> list[Example]:
    """Every example in the JSON-lines files, in a stable order (file name, then line)."""
    out = []
    for path in sorted(paths):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                text, category = obj["text"], obj["category"]
            except (ValueError, KeyError, TypeError) as exc:
                raise CorpusError(f"{path.name}:{n}: not a labelled example ({exc})") from None
            if not isinstance(text, str) or not text.strip():
                raise CorpusError(f"{path.name}:{n}: empty text")
            if category not in categories:
                raise CorpusError(f"{path.name}:{n}: category {category!r} is not catalogued")
            out.append(Example(text, category, str(obj.get("channel", "")), f"{path.name}:{n}"))
    return out


def training_files(corpus: Path = CORPUS) -> list[Path]:
    """The training part of the corpus: written examples and operators' corrections (never held-out text)."""
    return sorted([*(corpus / "train").glob("*.jsonl"), *(corpus / "learned").glob("*.jsonl")])


def heldout_files(corpus: Path = CORPUS) -> list[Path]:
    """The frozen held-out evaluation files."""
    return sorted((corpus / "heldout").glob("*.jsonl"))


def corpus_hash(examples: Sequence[Example]) -> str:
    """sha256 of the examples as trained on (text and label, in order)."""
    h = hashlib.sha256()
    for e in examples:
        h.update(json.dumps([e.text, e.category], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------- predictions


@dataclass(frozen=True)
class Candidate:
    """A category the model considers, with its calibrated probability."""

    category: str
    unit_kind: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    """The model's reading of one report."""

    candidates: tuple[Candidate, ...]  # the top categories, most probable first
    kind_probabilities: dict[str, float]  # summed over each unit kind's categories
    features: tuple[str, ...]  # what pushed the top category most (n-grams and words)
    best_by_kind: dict[str, Candidate]  # each unit kind's most probable category

    @property
    def best(self) -> Candidate:
        return self.candidates[0]

    @property
    def kind(self) -> str:
        """The most probable unit kind."""
        return max(self.kind_probabilities.items(), key=lambda kv: (kv[1], kv[0]))[0]

    def best_of_kind(self, kind: str) -> Candidate | None:
        """The most probable category of a unit kind among the candidates."""
        return next((c for c in self.candidates if c.unit_kind == kind), None)


def _build_pipeline(c: float):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    features = FeatureUnion([
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True,
                                  max_features=60000, dtype=np.float32)),
        ("words", TfidfVectorizer(tokenizer=words, token_pattern=None, lowercase=False, ngram_range=(1, 2),
                                  min_df=2, sublinear_tf=True, dtype=np.float32)),
    ])
    return Pipeline([("features", features),
                     ("model", LogisticRegression(C=c, max_iter=3000, tol=1e-6))])


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class TriageModel:
    """A trained triage model: predicts categories with calibrated probabilities and explains them."""

    def __init__(self, pipeline, temperature: float, threshold: float, kinds: dict[str, str], manifest: dict):
        self.pipeline = pipeline
        self.temperature = temperature
        self.threshold = threshold
        self.kinds = kinds  # category → unit kind
        self.manifest = manifest
        self.version: str = manifest["version"]
        self.classes: list[str] = [str(c) for c in pipeline.named_steps["model"].classes_]
        self._kind_index = {}
        for i, c in enumerate(self.classes):
            self._kind_index.setdefault(kinds[c], []).append(i)
        self._names = np.asarray(pipeline.named_steps["features"].get_feature_names_out(), dtype=object)

    # -- prediction
    def logits(self, texts: Sequence[str]):
        """Raw scores and the feature matrix of normalised texts."""
        x = self.pipeline.named_steps["features"].transform([normalise(t) for t in texts])
        return self.pipeline.named_steps["model"].decision_function(x), x

    def predict(self, texts: Sequence[str], top: int = 3, explain: int = 5) -> list[Prediction]:
        """Calibrated predictions for a batch of texts (one vectorisation for the batch)."""
        if not texts:
            return []
        logits, x = self.logits(texts)
        probs = _softmax(np.atleast_2d(logits), self.temperature)
        coef = self.pipeline.named_steps["model"].coef_
        out = []
        for row in range(probs.shape[0]):
            p = probs[row]
            order = np.argsort(-p, kind="stable")[:top]
            cands = tuple(Candidate(self.classes[i], self.kinds[self.classes[i]], round(float(p[i]), 4))
                          for i in order)
            kinds, best = {}, {}
            for k, idx in self._kind_index.items():
                kinds[k] = round(float(p[idx].sum()), 4)
                i = idx[int(np.argmax(p[idx]))]
                best[k] = Candidate(self.classes[i], k, round(float(p[i]), 4))
            out.append(Prediction(cands, kinds, self._explain(x[row], coef[order[0]], explain), best))
        return out

    def _explain(self, xrow, weights: np.ndarray, n: int) -> tuple[str, ...]:
        """The features that contributed most to a category's score (value × weight), strongest first;
        a word and the same characters as an n-gram count once."""
        idx, vals = xrow.indices, xrow.data
        if not len(idx):
            return ()
        contrib = vals * weights[idx]
        out: list[str] = []
        for i in np.argsort(-contrib, kind="stable"):
            if contrib[i] <= 0 or len(out) == n:
                break
            name = self._names[idx[i]].split("__", 1)[1].strip()
            if name and name not in out:
                out.append(name)
        return tuple(out)

    # -- persistence
    @classmethod
    def load(cls, manifest_path: Path) -> "TriageModel":
        """Load a model by its manifest; refuses an artifact whose sha256 differs from the manifest's."""
        import joblib

        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        blob = (manifest_path.parent / manifest["artifact"]).read_bytes()
        digest = hashlib.sha256(blob).hexdigest()
        if digest != manifest["sha256"]:
            raise ValueError(f"triage model {manifest['artifact']}: sha256 {digest} is not the manifest's "
                             f"{manifest['sha256']}")
        _jieba()
        pipeline = joblib.load(io.BytesIO(blob))  # trusted only because its hash matched the manifest
        return cls(pipeline, manifest["temperature"], manifest["threshold"], manifest["kinds"], manifest)


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class Trained:
    """A training run's artifact and manifest (not yet written)."""

    artifact: bytes
    manifest: dict

    @property
    def version(self) -> str:
        return self.manifest["version"]


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the log loss of out-of-fold logits (a 1-D search, deterministic)."""
    best_t, best_loss = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.05), np.log(5.0), 200)):
        p = _softmax(logits, float(t))
        loss = -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)))
        if loss < best_loss:
            best_t, best_loss = float(t), loss
    return round(best_t, 4)


def _kind_probs(p: np.ndarray, classes: list[str], kinds: dict[str, str]) -> tuple[list[str], np.ndarray]:
    names = sorted(set(kinds[c] for c in classes))
    m = np.zeros((len(classes), len(names)))
    for i, c in enumerate(classes):
        m[i, names.index(kinds[c])] = 1
    return names, p @ m


def choose_threshold(kind_conf: np.ndarray, kind_right: np.ndarray, budget: float = CONFIDENT_WRONG_BUDGET) -> float:
    """The lowest kind-probability threshold at which the confidently wrong share stays within budget."""
    for t in np.round(np.arange(0.30, 0.96, 0.01), 2):
        wrong = np.mean((kind_conf >= t) & ~kind_right)
        if wrong <= budget:
            return float(t)
    return 0.95


def train(examples: Sequence[Example], kinds: dict[str, str], catalogue_version: str, c: float = 8.0) -> Trained:
    """Train on the examples: out-of-fold calibration and threshold, then the final fit on everything.

    Deterministic: fixed folds and solver, single-threaded, so the same examples give the same bytes.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # a BLAS summing in another order would change the last bits
        return _train(examples, kinds, catalogue_version, c)


def _train(examples: Sequence[Example], kinds: dict[str, str], catalogue_version: str, c: float) -> Trained:
    import joblib
    import sklearn
    from sklearn.model_selection import LeaveOneGroupOut, StratifiedKFold

    texts = [normalise(e.text) for e in examples]
    labels = np.asarray([e.category for e in examples])
    classes = sorted(set(labels))
    y = np.asarray([classes.index(lbl) for lbl in labels])
    oof = np.zeros((len(texts), len(classes)))
    # Calibrate on text by writers the fold never saw: each corpus file is one writer's voice, so
    # leaving whole files out mimics reports written independently of the corpus (plain k-fold
    # would flatter the model with its own writers' habits).
    groups = np.asarray([e.source.split(":")[0] for e in examples])
    if len(set(groups)) >= 3:
        splits = list(LeaveOneGroupOut().split(texts, y, groups))
    else:
        splits = list(StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED).split(texts, y))
    for train_idx, test_idx in splits:
        fold = _build_pipeline(c).fit([texts[i] for i in train_idx], labels[train_idx])
        fold_classes = list(fold.named_steps["model"].classes_)
        scores = fold.decision_function([texts[i] for i in test_idx])
        full = np.full((len(test_idx), len(classes)), -1e3)
        for j, cls in enumerate(fold_classes):
            full[:, classes.index(cls)] = scores[:, j]
        oof[test_idx] = full
    temperature = _fit_temperature(oof, y)
    p = _softmax(oof, temperature)
    names, kp = _kind_probs(p, classes, kinds)
    true_kind = np.asarray([names.index(kinds[classes[i]]) for i in y])
    kind_pred, kind_conf = kp.argmax(axis=1), kp.max(axis=1)
    right = kind_pred == true_kind
    threshold = choose_threshold(kind_conf, right)
    oof_metrics = {
        "examples": len(texts),
        "category_accuracy": round(float(np.mean(p.argmax(axis=1) == y)), 4),
        "kind_accuracy": round(float(np.mean(right)), 4),
        "manual_share": round(float(np.mean(kind_conf < threshold)), 4),
        "confident_wrong_share": round(float(np.mean((kind_conf >= threshold) & ~right)), 4),
    }
    final = _build_pipeline(c).fit(texts, labels)
    for _, vec in final.named_steps["features"].transformer_list:
        vec.stop_words_ = None  # a set: its pickled order would vary between runs (and it is not needed)
    buf = io.BytesIO()
    joblib.dump(final, buf, compress=("zlib", 6), protocol=5)
    artifact = buf.getvalue()
    digest = hashlib.sha256(artifact).hexdigest()
    manifest = {
        "version": f"triage-{digest[:12]}",
        "artifact": f"triage-{digest[:12]}.joblib",
        "sha256": digest,
        "recipe": TRAINING_RECIPE,
        "catalogue_version": catalogue_version,
        "corpus_sha256": corpus_hash(examples),
        "classes": len(classes),
        "temperature": temperature,
        "threshold": threshold,
        "out_of_fold": oof_metrics,
        "sklearn": sklearn.__version__,
        "kinds": {cls: kinds[cls] for cls in classes},
    }
    return Trained(artifact, manifest)


def write(trained: Trained, directory: Path = REFERENCE) -> Path:
    """Write the artifact and its manifest; returns the manifest's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / trained.manifest["artifact"]).write_bytes(trained.artifact)
    path = directory / f"{trained.version}.json"
    path.write_text(json.dumps(trained.manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                    encoding="utf-8")
    return path


# ---------------------------------------------------------------- the live model and its activation

ACTIVE = "active.toml"
ACTIVATIONS = "activations.jsonl"


def load_active(directory: Path = REFERENCE) -> TriageModel:
    """The live model: the one `active.toml` names, with its hash checked and any threshold it sets."""
    import tomllib

    active = tomllib.loads((directory / ACTIVE).read_text(encoding="utf-8"))
    model = TriageModel.load(directory / f"{active['version']}.json")
    if model.manifest["sha256"] != active["sha256"]:
        raise ValueError(f"active model {active['version']}: the manifest's sha256 is not the activated one")
    if "threshold" in active:
        model.threshold = float(active["threshold"])
    return model


def activate(version: str, by: str, note: str, at: str, threshold: float | None = None,
             directory: Path = REFERENCE) -> dict:
    """Make a trained model the live one: rewrite `active.toml` and append the act to the activation log.

    The log line names who, when, why, and the model replaced — the record of an explicit decision.
    """
    model = TriageModel.load(directory / f"{version}.json")  # refuses a broken or unknown artifact
    previous = None
    if (directory / ACTIVE).exists():
        import tomllib

        previous = tomllib.loads((directory / ACTIVE).read_text(encoding="utf-8")).get("version")
    record = {"version": version, "sha256": model.manifest["sha256"], "activated_at": at, "activated_by": by,
              "note": note, "previous": previous}
    if threshold is not None:
        record["threshold"] = threshold
    lines = ["# The live triage model (written by `onewindow router activate`; see activations.jsonl).\n"]
    for k, v in record.items():
        if v is not None:
            lines.append(f"{k} = {json.dumps(v, ensure_ascii=False)}\n")
    (directory / ACTIVE).write_text("".join(lines), encoding="utf-8")
    with (directory / ACTIVATIONS).open("a", encoding="utf-8") as log_file:
        log_file.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    return record


# ---------------------------------------------------------------- the loop that learns

_LONG_NUMBER = re.compile(r"\d[\d\s-]{5,}\d")


def examples_from_corrections(records: Iterable) -> tuple[list[Example], list[dict]]:
    """Operators' corrections (TriageCorrected) joined with their cases' text (case.received).

    Returns the labelled examples (the last correction naming a category wins for a case) and the
    corrections that name only a unit kind or only say the category was wrong (returns), which a
    person must label before they can be trained on. Long numbers (phones, ids) are masked.
    """
    from shared.cloudevents import ContractError, EnvelopeError, decode

    texts, corrections = {}, []
    for rec in records:
        try:
            ev = decode(rec.key, rec.value, rec.headers)
        except EnvelopeError:
            continue
        if ev.type == "org.onewindow.case.received.v1":
            try:
                case = ev.model()
            except ContractError:
                continue
            texts[str(case.case_id)] = (f"{case.title} {case.description}", case.channel.value)
        elif ev.type == "org.onewindow.case.triage_corrected.v1":
            try:
                corrections.append(ev.model())
            except ContractError:
                continue
    labelled: dict[str, Example] = {}
    review = []
    for c in corrections:
        cid = str(c.case_id)
        if cid not in texts:
            continue
        text, channel = texts[cid]
        text = _LONG_NUMBER.sub("#", text)
        if c.corrected_category:
            labelled[cid] = Example(text, c.corrected_category, channel, f"case {c.case_number}: {c.correction}")
        else:
            review.append({"case_number": c.case_number, "text": text, "channel": channel,
                           "correction": c.correction, "predicted_category": c.predicted_category,
                           "corrected_kind": c.corrected_kind.value if c.corrected_kind else None,
                           "reason": c.reason})
    return list(labelled.values()), review
