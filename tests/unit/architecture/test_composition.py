"""The composition root's declarations agree with the plugins they name."""

from __future__ import annotations

from agent.plugins import COLLECTORS, COMMANDS, CollectorsSettings, Config, subsystem_classes


def test_the_collectors_section_has_one_field_per_collector_typed_as_its_settings_model() -> None:
    fields = CollectorsSettings.model_fields
    assert list(fields) == [cls.name for cls in COLLECTORS]
    for cls in COLLECTORS:
        assert fields[cls.name].annotation is cls.settings_model, cls.name
        assert type(CollectorsSettings().of(cls)) is cls.settings_model


def test_names_are_unique() -> None:
    names = [c.name for c in COLLECTORS] + [s.name for s in subsystem_classes()]
    assert len(names) == len(set(names))


def test_every_command_resolves_to_a_click_command() -> None:
    import importlib

    import click

    for name, target in COMMANDS.items():
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command), name
        assert command.name == name, (name, command.name)


def test_the_config_model_rejects_unknown_sections() -> None:
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError):
        Config.model_validate({"nonesuch": {}})
