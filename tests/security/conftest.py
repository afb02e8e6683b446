"""The real mosquitto fixture of the service tests, for the red-team tests."""

from tests.service.conftest import broker  # noqa: F401 - a pytest fixture
