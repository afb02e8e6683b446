"""SOC delivery: the durable outbox and the sinks it feeds.

``alert -> Outbox (SQLite, committed first) -> one worker per sink -> sink``:

- ``outbox``: durable, bounded, at-least-once bookkeeping per sink;
- ``delivery``: the workers, back-off, and the ``delivery_backlog`` alert;
- ``mqtt``: MQTT v5, QoS 1, TLS client certificates, PUBACK-confirmed;
- ``syslog`` (+ ``cef``): RFC 5424 carrying CEF, over TLS (RFC 5425) or TCP (RFC 6587);
- ``webhook`` (+ ``ocsf``): HTTPS POST of an OCSF Detection Finding, Standard Webhooks signature;
- ``jsonl``: the JSON-lines file, fsync-confirmed;
- ``acks``: acknowledgements from the SOC (MQTT topic, webhook reply);
- ``config``: the ``[[sinks]]``/``[outbox]``/``[state]`` sections, validated, and ``build_delivery``.

Delivery never changes an alert: every sink sends the bytes committed to the
outbox (or a standard rendering of exactly those fields).
"""
