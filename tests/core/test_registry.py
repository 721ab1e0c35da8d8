import pytest
from pydantic import BaseModel, ConfigDict

from sslcore.errors import DuplicateComponentError, UnknownComponentError
from sslcore.registry import NoParams, Registry


class P(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = 3


def make(params, **ctx):
    return ("built", params.k, ctx)


def test_add_get_build_and_names():
    reg = Registry("heads")
    reg.add("knn", make, params=P)
    entry = reg.get("knn")
    assert entry.module == __name__
    assert entry.build({"k": 5}, foo=1) == ("built", 5, {"foo": 1})
    assert reg.names() == ["knn"] and "knn" in reg and len(reg) == 1


def test_duplicate_names_both_modules():
    reg = Registry("heads")
    reg.add("knn", make, params=P, module="plugin_a.heads")
    with pytest.raises(DuplicateComponentError, match=r"plugin_a\.heads.*plugin_b\.heads"):
        reg.add("knn", make, params=P, module="plugin_b.heads")


def test_unknown_name_lists_close_matches_and_plugins():
    reg = Registry("backbones", installed_plugins=lambda: ["sslcore", "fraud_transactions"])
    reg.add("resnet18", make)
    reg.add("mlp", make)
    with pytest.raises(UnknownComponentError, match=r"Did you mean 'resnet18'.*fraud_transactions"):
        reg.get("resnet_18")


@pytest.mark.parametrize("bad", [
    dict(name="not valid", factory=make, params=NoParams),
    dict(name="ok", factory=42, params=NoParams),
    dict(name="ok", factory=make, params=dict),
])
def test_malformed_entries_are_refused(bad):
    with pytest.raises(TypeError):
        Registry("heads").add(**bad)


def test_params_model_must_forbid_extra_keys():
    class Loose(BaseModel):
        k: int = 1

    with pytest.raises(TypeError, match="extra='forbid'"):
        Registry("heads").add("loose", make, params=Loose)
