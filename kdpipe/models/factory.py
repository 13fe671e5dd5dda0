"""Build a model from a config string: builtin:NAME, torchvision:NAME or python:package.module:factory.

`python:` runs code the user names, on purpose: it is the one way a config can run code (README).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import signal
import sys
import warnings
from pathlib import Path

from torch import nn

from kdpipe.errors import DEBUG_HINT, ModelError
from kdpipe.models.builtin import BUILTIN

# Folders `python:module:factory` modules are imported from before sys.path, after the current folder:
# the command line adds the config file's folder.
EXTRA_IMPORT_ROOTS: list[Path] = []


def import_roots() -> list[Path]:
    return list(dict.fromkeys([Path.cwd(), *EXTRA_IMPORT_ROOTS]))


def build_model(spec: str, params: dict, input_shape, num_classes: int, where: str) -> nn.Module:
    scheme, _, name = spec.partition(":")
    try:
        if scheme == "builtin":
            if name not in BUILTIN:
                raise ModelError(f"{where} {spec!r}: unknown built-in model (built in: {', '.join(BUILTIN)})")
            return _call(BUILTIN[name], params, input_shape, num_classes, where, spec)
        if scheme == "torchvision":
            return _torchvision(name, params, num_classes, where, spec)
        if scheme == "python":
            return _call(_import_factory(name, where, spec), params, input_shape, num_classes, where, spec)
    except ModelError:
        raise
    except (TypeError, ValueError) as e:
        raise ModelError(f"{where} {spec!r}: cannot build the model with params {params}: {e}") from None
    raise ModelError(f"{where} {spec!r}: expected builtin:NAME, torchvision:NAME or python:package.module:factory")


def _call(factory, params, input_shape, num_classes, where, spec) -> nn.Module:
    kwargs = dict(params)
    accepted = _accepted_kwargs(factory)
    # Pass what the data knows (input shape, class count) when the factory asks for it.
    for key, value in (("input_shape", tuple(input_shape)), ("num_classes", num_classes)):
        if key not in kwargs and (accepted is None or key in accepted):
            kwargs[key] = value
    if accepted is not None:
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise ModelError(f"{where} {spec!r}: unknown params {unknown} (accepted: {sorted(accepted)})")
    try:
        with users_code(f"{where} {spec!r}: the factory"), warnings.catch_warnings():
            # a layer of width 0: the pre-flight check names it in one line (kdpipe.models.checks)
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
            model = factory(**kwargs)
    except ModelError:
        raise
    except Exception as e:  # the user's own code failed: name it, keep its traceback for --debug
        raise ModelError(f"{where} {spec!r}: the factory raised {type(e).__name__}: {_one_line(e)}"
                         f"{DEBUG_HINT}") from e
    if not isinstance(model, nn.Module):
        raise ModelError(f"{where} {spec!r}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _accepted_kwargs(factory) -> set[str] | None:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _import_factory(target: str, where: str, spec: str):
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ModelError(f"{where} {spec!r}: expected python:package.module:factory")
    try:
        with _importable_from(import_roots()), users_code(f"{where} {spec!r}: importing {module_name!r}"):
            module = importlib.import_module(module_name)
    except ModelError:
        raise
    except ImportError as e:
        roots = " and ".join(str(r) for r in import_roots())
        raise ModelError(f"{where} {spec!r}: cannot import {module_name!r} ({e}); kdpipe imports from {roots} "
                         "and the Python path (PYTHONPATH)") from e
    except Exception as e:  # the module itself fails while it is imported
        raise ModelError(f"{where} {spec!r}: importing {module_name!r} raised {type(e).__name__}: {_one_line(e)}"
                         f"{DEBUG_HINT}") from e
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelError(f"{where} {spec!r}: {module_name!r} has no callable {attr!r}")
    return factory


@contextlib.contextmanager
def users_code(what: str):
    """Runs a user's code, whose sys.exit() or `raise KeyboardInterrupt` must not pass for kdpipe's own
    exit or for the user's Ctrl-C ("interrupted; finished stages are kept"). A real Ctrl-C is told
    apart by a SIGINT handler that marks it before raising."""
    pressed = []

    def on_sigint(signum, frame):
        pressed.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: signals are not ours to handle
        previous = None
    try:
        yield
    except SystemExit as e:
        raise ModelError(
            f"{what} called sys.exit({e.code!r}); a factory must return a model or raise{DEBUG_HINT}"
        ) from e
    except KeyboardInterrupt as e:
        if pressed:
            raise
        raise ModelError(f"{what} raised KeyboardInterrupt (no Ctrl-C was pressed){DEBUG_HINT}") from e
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _importable_from(roots: list[Path]):
    """Users expect the folder they run from and the config's folder to be importable (as `python -m`
    makes the current one): put them first on sys.path while the module is imported."""
    added = [str(r) for r in roots if str(r) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for r in added:
            sys.path.remove(r)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:300] or "(no message)"


def _torchvision(name: str, params: dict, num_classes: int, where: str, spec: str) -> nn.Module:
    try:
        import torchvision.models as tvm
    except Exception as e:  # missing, or built for another torch
        raise ModelError(f"{where} {spec!r}: torchvision is not usable here ({type(e).__name__}: {e})") from None
    if name not in tvm.list_models():
        raise ModelError(f"{where} {spec!r}: torchvision has no model {name!r}")
    kwargs = {"weights": None, "num_classes": num_classes, **params}
    return tvm.get_model(name, **kwargs)
