"""The learned triage: which matter (事项) a free-text report is, with a calibrated probability.

Character n-grams (robust to typos, dialect and unseen words) and jieba words, weighted by TF-IDF,
feed two linear classifiers (scikit-learn): one for the unit kind, one for the catalogue item.
Their scores become probabilities through a temperature each, fitted on out-of-fold scores (the
model never scores text it trained on), and the manual-queue threshold on the kind's probability is
chosen on those same out-of-fold predictions. The folds leave out whole
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
VERSION = re.compile(r"triage-[0-9a-f]{12}")
_ARTIFACT = re.compile(r"triage-[0-9a-f]{12}\.joblib")
CORPUS = Path(__file__).parent / "corpus"
# Bumped when features or training change in a way that makes older artifacts incomparable.
TRAINING_RECIPE = "char1-3(20k)+jieba1-2(10k)+linearsvc(kind, item)+temperature+f16.v2"
FOLDS = 5
SEED = 20261202
# Reports for none of the catalogue's matters (a street lamp, a power cut, a consultation): the model
# learns them as one more class of their own kind, and the router sends them to the manual queue.
OUT_OF_SCOPE = "out_of_scope"
OTHER_KIND = "other"
# Out-of-fold share of all cases that may be sent confidently to the wrong unit kind.
CONFIDENT_WRONG_BUDGET = 0.02


# ---------------------------------------------------------------- text


_CODES = re.compile(r"[0-9a-z][0-9a-z_-]{4,}")
_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_]")  # a letter or a character of a word (CJK included)
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """One form for the same words: NFKC (full-width → half-width), lower case, codes (report and
    plate numbers, phones, ids: five or more letters and digits) dropped, other digit runs as '0' —
    so that an identifier never decides a matter."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", _DIGITS.sub("0", _CODES.sub(" ", text))).strip()


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
            if category not in categories and category != OUT_OF_SCOPE:
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
    kind_probabilities: dict[str, float]  # of each unit kind (the kind classifier, calibrated)
    features: tuple[str, ...]  # what pushed the top category most (n-grams and words)
    best_by_kind: dict[str, Candidate]  # each unit kind's most probable category
    evidence: int = 1  # how many of the text's features the model knows (0: it read nothing)

    @property
    def best(self) -> Candidate:
        """The most probable catalogue item."""
        return self.candidates[0]

    @property
    def kind(self) -> str:
        """The most probable unit kind."""
        return max(self.kind_probabilities.items(), key=lambda kv: (kv[1], kv[0]))[0]

    def best_of_kind(self, kind: str) -> Candidate | None:
        """The most probable category of a unit kind among the candidates."""
        return next((c for c in self.candidates if c.unit_kind == kind), None)


def _features():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    return FeatureUnion([
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True,
                                  max_features=20000, dtype=np.float32)),
        ("words", TfidfVectorizer(tokenizer=words, token_pattern=None, lowercase=False, ngram_range=(1, 2),
                                  min_df=2, sublinear_tf=True, max_features=10000, dtype=np.float32)),
    ])


def _classifier(c: float):
    from sklearn.svm import LinearSVC

    return LinearSVC(C=c, max_iter=5000, random_state=SEED)


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _kind_probabilities(kind_p: np.ndarray, item_p: np.ndarray, item_kind: np.ndarray) -> np.ndarray:
    """The unit kind's probability: the mean of the kind classifier's and the sum of its items' (two
    views of the same text agree more often than either is right alone)."""
    summed = np.stack([item_p[:, item_kind == k].sum(axis=1) for k in range(kind_p.shape[1])], axis=1)
    return (kind_p + summed) / 2


def _weights(clf) -> tuple[np.ndarray, np.ndarray]:
    """A linear classifier's weights as features × classes, and its biases; a two-class classifier
    keeps one score (the second class's), made two here as for more classes."""
    w, b = clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32)
    if w.shape[1] == 1:
        w, b = np.hstack([-w, w]), np.concatenate([-b, b])
    return np.ascontiguousarray(w), b


class TriageModel:
    """A trained triage model: the unit kind (a 4-way classifier) and the item (a classifier over every
    catalogue item) read from the same features; scores become probabilities by a calibrated
    temperature each. Predicts with calibrated probabilities and explains the chosen item."""

    def __init__(self, parts: dict, manifest: dict):
        self.parts = parts
        self.manifest = manifest
        self.version: str = manifest["version"]
        self.threshold: float = manifest["threshold"]
        self.kinds: dict[str, str] = manifest["kinds"]  # item → unit kind
        self.classes: list[str] = [str(c) for c in parts["items"].classes_]
        self.kind_classes: list[str] = [str(c) for c in parts["kinds"].classes_]
        self._items_of_kind: dict[str, list[int]] = {}
        for i, c in enumerate(self.classes):
            self._items_of_kind.setdefault(self.kinds[c], []).append(i)
        self._item_kind = np.asarray([self.kind_classes.index(self.kinds[c]) for c in self.classes])
        self._out_of_scope = self.classes.index(OUT_OF_SCOPE) if OUT_OF_SCOPE in self.classes else -1
        self._names = np.asarray(parts["features"].get_feature_names_out(), dtype=object)
        # the fitted parameters, laid out for one text at a time (features × classes)
        self._lean, offset = [], 0
        for _, vec in parts["features"].transformer_list:
            self._lean.append((vec.build_analyzer(), vec.vocabulary_, vec.idf_.astype(np.float32), offset))
            offset += len(vec.vocabulary_)
        self._kind_w, self._kind_b = _weights(parts["kinds"])
        self._item_w, self._item_b = _weights(parts["items"])

    def with_threshold(self, threshold: float, version: str | None = None) -> "TriageModel":
        """The same model with another manual-queue threshold (what an activation may set)."""
        return TriageModel(self.parts, self.manifest | {"threshold": threshold, "version": version or self.version})

    def features_of(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The TF-IDF features of one text as (indices, values): the fitted vectorizers' own analyzers,
        vocabularies and idf, computed without scikit-learn's per-call validation (5× faster for one
        text; `sklearn_scores` checks it agrees with scikit-learn's own transform)."""
        norm = normalise(text)
        idx_parts, val_parts = [], []
        if not _WORD.search(norm):  # punctuation and identifiers only: nothing to read
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        for analyze, vocab, idf, offset in self._lean:
            counts: dict[int, int] = {}
            for term in analyze(norm):
                j = vocab.get(term)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            if not counts:
                continue
            idx = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
            val = (1 + np.log(tf)) * idf[idx]  # sublinear tf × idf, then l2 per vectorizer
            val /= np.sqrt(np.dot(val, val))
            idx_parts.append(idx + offset)
            val_parts.append(val)
        if not idx_parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.concatenate(idx_parts), np.concatenate(val_parts)

    def scores(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Kind and item decision scores of one text, with its features."""
        idx, val = self.features_of(text)
        kinds = val @ self._kind_w[idx] + self._kind_b
        items = val @ self._item_w[idx] + self._item_b
        return kinds, items, idx, val

    def sklearn_scores(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The same scores through scikit-learn's transform and decision_function (the reference)."""
        x = self.parts["features"].transform([normalise(t) for t in texts])
        return self.parts["kinds"].decision_function(x), self.parts["items"].decision_function(x)

    def predict(self, texts: Sequence[str], top: int = 3, explain: int = 5) -> list[Prediction]:
        """Calibrated predictions for texts: the kind's and the items' probabilities, the top items,
        each kind's best item, and the features behind the chosen item. The scores of the whole batch
        come from one sparse product (texts × features) · (features × classes); only reading the
        features and building each Prediction remain per text."""
        if not texts:
            return []
        from scipy.sparse import csr_matrix

        feats = [self.features_of(t) for t in texts]
        indptr = np.zeros(len(feats) + 1, dtype=np.int64)
        np.cumsum([len(idx) for idx, _ in feats], out=indptr[1:])
        x = csr_matrix((np.concatenate([v for _, v in feats]), np.concatenate([i for i, _ in feats]), indptr),
                       shape=(len(feats), self._kind_w.shape[0]))
        p = _softmax(x @ self._item_w + self._item_b, self.manifest["item_temperature"])
        kind_p = _kind_probabilities(_softmax(x @ self._kind_w + self._kind_b, self.manifest["kind_temperature"]),
                                     p, self._item_kind)
        order = np.argsort(-p, axis=1, kind="stable")[:, :top + 1]
        best_of_kind = {k: np.asarray(items)[np.argmax(p[:, items], axis=1)] for k, items in self._items_of_kind.items()}
        out = []
        for r, (idx, val) in enumerate(feats):
            cands = tuple(Candidate(self.classes[i], self.kinds[self.classes[i]], round(float(p[r, i]), 4))
                          for i in order[r] if i != self._out_of_scope)[:top]
            kinds = {k: round(float(kind_p[r, j]), 4) for j, k in enumerate(self.kind_classes)}
            best = {k: Candidate(self.classes[i], k, round(float(p[r, i]), 4))
                    for k, i in ((k, int(b[r])) for k, b in best_of_kind.items())}
            chosen = self.classes.index(best[max(kinds, key=lambda k: (kinds[k], k))].category)
            out.append(Prediction(cands, kinds, self._explain(idx, val * self._item_w[idx, chosen], explain), best,
                                  len(idx)))
        return out

    def _explain(self, idx: np.ndarray, contrib: np.ndarray, n: int) -> tuple[str, ...]:
        """The features that contributed most to an item's score (value × weight), strongest first;
        a word and the same characters as an n-gram count once."""
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
    def load(cls, manifest_path: Path, expected_sha256: str | None = None) -> "TriageModel":
        """Load a model by its manifest. The artifact must be a file beside the manifest whose sha256
        is the manifest's (and the activated one's, when given) — checked before anything is
        unpickled, since unpickling runs code."""
        import joblib

        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        name = str(manifest.get("artifact", ""))
        if not _ARTIFACT.fullmatch(name):
            raise ValueError(f"triage manifest {manifest_path.name}: artifact {name!r} is not a model file name")
        blob = (manifest_path.parent / name).read_bytes()
        digest = hashlib.sha256(blob).hexdigest()
        for want in (manifest["sha256"], expected_sha256):
            if want is not None and digest != want:
                raise ValueError(f"triage model {name}: sha256 {digest} is not the expected {want}")
        _jieba()
        parts = joblib.load(io.BytesIO(blob))  # trusted only because its hash matched
        for clf in (parts["kinds"], parts["items"]):
            clf.coef_ = clf.coef_.astype(np.float32)  # stored as float16 (3 significant digits suffice)
        return cls(parts, manifest)


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
    """The temperature minimising the log loss of out-of-fold scores (a 1-D search, deterministic)."""
    best_t, best_loss = 1.0, np.inf
    for t in np.exp(np.linspace(np.log(0.01), np.log(5.0), 300)):
        p = _softmax(logits, float(t))
        loss = -np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)))
        if loss < best_loss:
            best_t, best_loss = float(t), loss
    return round(best_t, 5)


def choose_threshold(kind_conf: np.ndarray, kind_right: np.ndarray, budget: float = CONFIDENT_WRONG_BUDGET) -> float:
    """The lowest kind-probability threshold at which the confidently wrong share stays within budget."""
    for t in np.round(np.arange(0.30, 0.96, 0.01), 2):
        wrong = np.mean((kind_conf >= t) & ~kind_right)
        if wrong <= budget:
            return float(t)
    return 0.95


def _scores(model, x, classes: list[str]) -> np.ndarray:
    """Decision scores in the order of `classes` (a fold may lack a class: it scores very low)."""
    raw = model.decision_function(x)
    if raw.ndim == 1:
        raw = np.stack([-raw, raw], axis=1)
    out = np.full((x.shape[0], len(classes)), -1e3)
    for j, c in enumerate(model.classes_):
        out[:, classes.index(c)] = raw[:, j]
    return out


def train(examples: Sequence[Example], kinds: dict[str, str], catalogue_version: str, c: float = 1.0) -> Trained:
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

    kinds = {**kinds, OUT_OF_SCOPE: OTHER_KIND}
    texts = [normalise(e.text) for e in examples]
    labels = np.asarray([e.category for e in examples])
    kind_labels = np.asarray([kinds[e.category] for e in examples])
    classes, kind_classes = sorted(set(labels)), sorted(set(kind_labels))
    y = np.asarray([classes.index(v) for v in labels])
    yk = np.asarray([kind_classes.index(v) for v in kind_labels])
    # Calibrate on text by writers the fold never saw: each corpus file is one writer's voice, so
    # leaving whole files out mimics reports written independently of the corpus (plain k-fold
    # would flatter the model with its own writers' habits).
    groups = np.asarray([e.source.split(":")[0] for e in examples])
    # A category from one file only (the out-of-scope reports) is spread over the writers' folds, so
    # that no fold trains without it.
    writers = sorted(set(groups))
    for cat in set(labels):
        members = np.flatnonzero(labels == cat)
        if len(set(groups[members])) == 1 and len(writers) > 1:
            others = [w for w in writers if w != groups[members[0]]]
            for n, i in enumerate(members):
                groups[i] = others[n % len(others)]
    if len(set(groups)) >= 3:
        splits = list(LeaveOneGroupOut().split(texts, y, groups))
    else:
        splits = list(StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED).split(texts, y))
    oof_items = np.zeros((len(texts), len(classes)))
    oof_kinds = np.zeros((len(texts), len(kind_classes)))
    for train_idx, test_idx in splits:
        feats = _features()
        x_train = feats.fit_transform([texts[i] for i in train_idx])
        x_test = feats.transform([texts[i] for i in test_idx])
        oof_items[test_idx] = _scores(_classifier(c).fit(x_train, labels[train_idx]), x_test, classes)
        oof_kinds[test_idx] = _scores(_classifier(c).fit(x_train, kind_labels[train_idx]), x_test, kind_classes)
    item_t, kind_t = _fit_temperature(oof_items, y), _fit_temperature(oof_kinds, yk)
    ip = _softmax(oof_items, item_t)
    item_kind = np.asarray([kind_classes.index(kinds[cl]) for cl in classes])
    kp = _kind_probabilities(_softmax(oof_kinds, kind_t), ip, item_kind)
    kind_pred, kind_conf = kp.argmax(axis=1), kp.max(axis=1)
    right = kind_pred == yk
    threshold = choose_threshold(kind_conf, right)
    # the item chosen is the most probable item of the chosen kind
    masked = np.where(item_kind[None, :] == kind_pred[:, None], ip, -1)
    oof_metrics = {
        "examples": len(texts),
        "folds": f"leave one of {len(set(groups))} writers out" if len(set(groups)) >= 3 else f"{FOLDS}-fold",
        "category_accuracy": round(float(np.mean(masked.argmax(axis=1) == y)), 4),
        "kind_accuracy": round(float(np.mean(right)), 4),
        "manual_share": round(float(np.mean(kind_conf < threshold)), 4),
        "confident_wrong_share": round(float(np.mean((kind_conf >= threshold) & ~right)), 4),
    }
    feats = _features()
    x = feats.fit_transform(texts)
    parts = {"features": feats, "kinds": _classifier(c).fit(x, kind_labels), "items": _classifier(c).fit(x, labels)}
    for _, vec in feats.transformer_list:
        vec.stop_words_ = None  # a set: its pickled order would vary between runs (and it is not needed)
        vec.__dict__.pop("_stop_words_id", None)  # a cache keyed by id(): differs in every process
    for clf in (parts["kinds"], parts["items"]):
        clf.coef_ = clf.coef_.astype(np.float16)  # a quarter of the size; widened again when loaded
    buf = io.BytesIO()
    joblib.dump(parts, buf, compress=("zlib", 6), protocol=5)
    artifact = buf.getvalue()
    digest = hashlib.sha256(artifact).hexdigest()
    # the version names the weights and their calibration: the same weights calibrated otherwise differ
    calibration = json.dumps([item_t, kind_t, threshold]).encode()
    version = hashlib.sha256(artifact + calibration).hexdigest()[:12]
    manifest = {
        "version": f"triage-{version}",
        "artifact": f"triage-{version}.joblib",
        "sha256": digest,
        "recipe": TRAINING_RECIPE,
        "c": c,
        "catalogue_version": catalogue_version,
        "corpus_sha256": corpus_hash(examples),
        "classes": len(classes),
        "item_temperature": item_t,
        "kind_temperature": kind_t,
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
    if not VERSION.fullmatch(str(active.get("version", ""))):
        raise ValueError(f"{ACTIVE}: {active.get('version')!r} is not a model version")
    model = TriageModel.load(directory / f"{active['version']}.json", expected_sha256=active["sha256"])
    if "threshold" in active:
        model = model.with_threshold(float(active["threshold"]))
    return model


def activate(version: str, by: str, note: str, at: str, threshold: float | None = None,
             directory: Path = REFERENCE) -> dict:
    """Make a trained model the live one: rewrite `active.toml` and append the act to the activation log.

    The log line names who, when, why, and the model replaced — the record of an explicit decision.
    """
    if not VERSION.fullmatch(version):
        raise ValueError(f"{version!r} is not a model version (triage-<12 hex digits>)")
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
            labelled[cid] = Example(text, c.corrected_category, channel, f"case {c.case_number}")
        else:
            review.append({"case_number": c.case_number, "text": text, "channel": channel,
                           "correction": c.correction, "predicted_category": c.predicted_category,
                           "corrected_kind": c.corrected_kind.value if c.corrected_kind else None,
                           "reason": c.reason})
    return list(labelled.values()), review
