//! MQTT bridge actor and embedded broker.
