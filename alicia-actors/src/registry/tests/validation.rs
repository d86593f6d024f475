//! The validation table: every field of a registration, valid and invalid.

use std::collections::BTreeMap;

use alicia_core::Timestamp;

use crate::registry::{
    Capability, DeviceSpec, HardwareId, HardwareIdKind, PowerSource, Property, RegistryError,
    ValueType, validate_spec,
};

const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// Builds a dimmable lamp that uses every field.
fn lamp() -> DeviceSpec {
    let mut spec = DeviceSpec::new("kitchen-lamp", "light", "Kitchen lamp");
    spec.location = Some("Kitchen".into());
    spec.capabilities = vec![
        Capability::new("on_off").with_property(Property::new("on", ValueType::Boolean).writable()),
        Capability::new("brightness").with_property(
            Property::new("level", ValueType::Integer)
                .with_unit("%")
                .with_range(0.0, 100.0, Some(1.0))
                .writable(),
        ),
        Capability::new("effect").with_property(
            Property::new("name", ValueType::Enum)
                .with_allowed_values(&["none", "blink", "breathe"])
                .writable(),
        ),
    ];
    spec.identifiers = vec![
        HardwareId::new(HardwareIdKind::Mac, "00:17:88:01:02:03"),
        HardwareId::new(HardwareIdKind::ZigbeeIeee, "0x00158d0001a2b3c4"),
        HardwareId::new(HardwareIdKind::Serial, "SN-12345"),
        HardwareId::new(HardwareIdKind::Uuid, "123e4567-e89b-12d3-a456-426614174000"),
    ];
    spec.firmware_version = Some("1.2.3".into());
    spec.hardware_version = Some("rev B".into());
    spec.power_source = PowerSource::Mains;
    spec.heartbeat_timeout_secs = Some(120);
    spec.metadata = BTreeMap::from([("vendor".into(), "Acme".into())]);
    spec
}

fn errors_of(spec: &DeviceSpec) -> Vec<String> {
    match validate_spec(spec, NOW) {
        Ok(_) => Vec::new(),
        Err(RegistryError::Invalid { errors, .. }) => {
            errors.0.iter().map(|error| error.field.clone()).collect()
        }
        Err(other) => vec![format!("unexpected error: {other}")],
    }
}

type Change = fn(&mut DeviceSpec);

#[test]
fn lamp_is_valid() {
    let record = validate_spec(&lamp(), NOW).expect("the lamp is valid");
    assert_eq!(record.id.as_str(), "kitchen-lamp");
    assert_eq!(record.created_at, NOW);
    assert_eq!(record.capabilities.len(), 3);
}

#[test]
fn valid_values_pass() {
    let cases: &[(&str, Change)] = &[
        ("id with dots", |s| s.id = "hue.bulb_2-a".into()),
        ("id of 64 characters", |s| s.id = "a".repeat(64)),
        ("type with digits", |s| s.device_type = "sensor2".into()),
        ("name with unicode", |s| s.name = "Lámpara de cocina".into()),
        ("no location", |s| s.location = None),
        ("location with spaces", |s| {
            s.location = Some("Living room".into())
        }),
        ("no capabilities", |s| s.capabilities.clear()),
        ("capability without properties", |s| {
            s.capabilities = vec![Capability::new("identify")]
        }),
        ("number range without step", |s| {
            s.capabilities = vec![
                Capability::new("temperature").with_property(
                    Property::new("current", ValueType::Number)
                        .with_unit("°C")
                        .with_range(-40.0, 85.0, None),
                ),
            ]
        }),
        ("write-only property", |s| {
            let mut property = Property::new("trigger", ValueType::Boolean).writable();
            property.readable = false;
            s.capabilities = vec![Capability::new("identify").with_property(property)];
        }),
        ("MAC with dashes in capitals", |s| {
            s.identifiers = vec![HardwareId::new(HardwareIdKind::Mac, "00-17-88-0A-0B-0C")]
        }),
        ("MAC without separators", |s| {
            s.identifiers = vec![HardwareId::new(HardwareIdKind::Mac, "0017880a0b0c")]
        }),
        ("IEEE without 0x", |s| {
            s.identifiers = vec![HardwareId::new(
                HardwareIdKind::ZigbeeIeee,
                "00158D0001A2B3C4",
            )]
        }),
        ("no identifiers", |s| s.identifiers.clear()),
        ("no versions", |s| {
            s.firmware_version = None;
            s.hardware_version = None;
        }),
        ("battery power", |s| s.power_source = PowerSource::Battery),
        ("no timeout", |s| s.heartbeat_timeout_secs = None),
        ("shortest timeout", |s| s.heartbeat_timeout_secs = Some(10)),
        ("longest timeout", |s| {
            s.heartbeat_timeout_secs = Some(604_800)
        }),
        ("empty metadata value", |s| {
            s.metadata = BTreeMap::from([("note".into(), String::new())])
        }),
    ];
    for (case, change) in cases {
        let mut spec = lamp();
        change(&mut spec);
        assert_eq!(errors_of(&spec), Vec::<String>::new(), "case {case:?}");
    }
}

#[test]
fn invalid_values_name_their_field() {
    let cases: &[(&str, Change, &str)] = &[
        ("empty id", |s| s.id = String::new(), "id"),
        ("id with slash", |s| s.id = "kitchen/lamp".into(), "id"),
        ("id with wildcard", |s| s.id = "lamp+".into(), "id"),
        ("id too long", |s| s.id = "a".repeat(65), "id"),
        ("reserved id status", |s| s.id = "status".into(), "id"),
        ("reserved id registry", |s| s.id = "registry".into(), "id"),
        ("empty type", |s| s.device_type = String::new(), "type"),
        (
            "type in capitals",
            |s| s.device_type = "Light".into(),
            "type",
        ),
        (
            "type with space",
            |s| s.device_type = "smart light".into(),
            "type",
        ),
        (
            "type starting with digit",
            |s| s.device_type = "2light".into(),
            "type",
        ),
        ("empty name", |s| s.name = String::new(), "name"),
        ("blank name", |s| s.name = "   ".into(), "name"),
        ("name too long", |s| s.name = "n".repeat(129), "name"),
        ("name with newline", |s| s.name = "a\nb".into(), "name"),
        (
            "empty location",
            |s| s.location = Some(String::new()),
            "location",
        ),
        (
            "location with NUL",
            |s| s.location = Some("a\0b".into()),
            "location",
        ),
        (
            "location too long",
            |s| s.location = Some("l".repeat(65)),
            "location",
        ),
        (
            "capability name invalid",
            |s| s.capabilities[0].name = "On-Off".into(),
            "capabilities[0].name",
        ),
        (
            "capability twice",
            |s| s.capabilities[2].name = "on_off".into(),
            "capabilities[2].name",
        ),
        (
            "too many capabilities",
            |s| s.capabilities = (0..65).map(|i| Capability::new(format!("c{i}"))).collect(),
            "capabilities",
        ),
        (
            "property name empty",
            |s| s.capabilities[1].properties[0].name = String::new(),
            "capabilities[1].properties[0].name",
        ),
        (
            "property twice",
            |s| {
                let copy = s.capabilities[1].properties[0].clone();
                s.capabilities[1].properties.push(copy);
            },
            "capabilities[1].properties[1].name",
        ),
        (
            "too many properties",
            |s| {
                s.capabilities[0].properties = (0..33)
                    .map(|i| Property::new(format!("p{i}"), ValueType::Boolean))
                    .collect()
            },
            "capabilities[0].properties",
        ),
        (
            "unit too long",
            |s| s.capabilities[1].properties[0].unit = Some("u".repeat(17)),
            "capabilities[1].properties[0].unit",
        ),
        (
            "neither readable nor writable",
            |s| {
                let property = &mut s.capabilities[0].properties[0];
                property.readable = false;
                property.writable = false;
            },
            "capabilities[0].properties[0].readable",
        ),
        (
            "range min above max",
            |s| {
                s.capabilities[1].properties[0] = s.capabilities[1].properties[0]
                    .clone()
                    .with_range(10.0, 0.0, None)
            },
            "capabilities[1].properties[0].range",
        ),
        (
            "range equal bounds",
            |s| {
                s.capabilities[1].properties[0] = s.capabilities[1].properties[0]
                    .clone()
                    .with_range(5.0, 5.0, None)
            },
            "capabilities[1].properties[0].range",
        ),
        (
            "range not finite",
            |s| {
                s.capabilities[1].properties[0] = s.capabilities[1].properties[0]
                    .clone()
                    .with_range(0.0, f64::INFINITY, None)
            },
            "capabilities[1].properties[0].range",
        ),
        (
            "range on boolean",
            |s| {
                s.capabilities[0].properties[0] = s.capabilities[0].properties[0]
                    .clone()
                    .with_range(0.0, 1.0, None)
            },
            "capabilities[0].properties[0].range",
        ),
        (
            "fractional range of integer",
            |s| {
                s.capabilities[1].properties[0] = s.capabilities[1].properties[0]
                    .clone()
                    .with_range(0.5, 10.0, None)
            },
            "capabilities[1].properties[0].range",
        ),
        (
            "zero step",
            |s| {
                s.capabilities[1].properties[0] = s.capabilities[1].properties[0]
                    .clone()
                    .with_range(0.0, 100.0, Some(0.0))
            },
            "capabilities[1].properties[0].range.step",
        ),
        (
            "step beyond range",
            |s| {
                s.capabilities[1].properties[0] = s.capabilities[1].properties[0]
                    .clone()
                    .with_range(0.0, 100.0, Some(101.0))
            },
            "capabilities[1].properties[0].range.step",
        ),
        (
            "enum without values",
            |s| s.capabilities[2].properties[0].allowed_values.clear(),
            "capabilities[2].properties[0].allowed_values",
        ),
        (
            "allowed values on string",
            |s| s.capabilities[2].properties[0].value_type = ValueType::String,
            "capabilities[2].properties[0].allowed_values",
        ),
        (
            "allowed value twice",
            |s| {
                s.capabilities[2].properties[0]
                    .allowed_values
                    .push("none".into())
            },
            "capabilities[2].properties[0].allowed_values[3]",
        ),
        (
            "allowed value empty",
            |s| s.capabilities[2].properties[0].allowed_values[1] = String::new(),
            "capabilities[2].properties[0].allowed_values[1]",
        ),
        (
            "too many allowed values",
            |s| {
                s.capabilities[2].properties[0].allowed_values =
                    (0..65).map(|i| format!("v{i}")).collect()
            },
            "capabilities[2].properties[0].allowed_values",
        ),
        (
            "MAC too short",
            |s| s.identifiers[0].value = "00:17:88:01:02".into(),
            "identifiers[0].value",
        ),
        (
            "MAC not hex",
            |s| s.identifiers[0].value = "00:17:88:01:02:zz".into(),
            "identifiers[0].value",
        ),
        (
            "MAC mixed separators",
            |s| s.identifiers[0].value = "00:17-88:01:02:03".into(),
            "identifiers[0].value",
        ),
        (
            "IEEE too short",
            |s| s.identifiers[1].value = "0x00158d".into(),
            "identifiers[1].value",
        ),
        (
            "serial with space",
            |s| s.identifiers[2].value = "SN 1".into(),
            "identifiers[2].value",
        ),
        (
            "empty serial",
            |s| s.identifiers[2].value = String::new(),
            "identifiers[2].value",
        ),
        (
            "UUID malformed",
            |s| s.identifiers[3].value = "123e4567e89b12d3a456426614174000".into(),
            "identifiers[3].value",
        ),
        (
            "identifier twice after normalizing",
            |s| {
                s.identifiers
                    .push(HardwareId::new(HardwareIdKind::Mac, "00-17-88-01-02-03"))
            },
            "identifiers[4].value",
        ),
        (
            "too many identifiers",
            |s| {
                s.identifiers = (0..17)
                    .map(|i| HardwareId::new(HardwareIdKind::Serial, format!("SN{i}")))
                    .collect()
            },
            "identifiers",
        ),
        (
            "firmware version empty",
            |s| s.firmware_version = Some(String::new()),
            "firmware_version",
        ),
        (
            "hardware version with tab",
            |s| s.hardware_version = Some("a\tb".into()),
            "hardware_version",
        ),
        (
            "timeout too short",
            |s| s.heartbeat_timeout_secs = Some(9),
            "heartbeat_timeout_secs",
        ),
        (
            "timeout too long",
            |s| s.heartbeat_timeout_secs = Some(604_801),
            "heartbeat_timeout_secs",
        ),
        (
            "metadata key invalid",
            |s| s.metadata = BTreeMap::from([("Vendor Name".into(), "Acme".into())]),
            "metadata[\"Vendor Name\"]",
        ),
        (
            "metadata value with control character",
            |s| s.metadata = BTreeMap::from([("vendor".into(), "a\u{1b}b".into())]),
            "metadata[\"vendor\"]",
        ),
        (
            "too many metadata entries",
            |s| s.metadata = (0..33).map(|i| (format!("k{i}"), "v".into())).collect(),
            "metadata",
        ),
    ];
    for (case, change, field) in cases {
        let mut spec = lamp();
        change(&mut spec);
        let fields = errors_of(&spec);
        assert_eq!(fields, vec![field.to_string()], "case {case:?}");
    }
}

#[test]
fn error_message_names_field_value_and_fix() {
    let mut spec = lamp();
    spec.capabilities[1].properties[0].range = lamp().capabilities[1].properties[0]
        .clone()
        .with_range(10.0, 0.0, None)
        .range;
    let message = validate_spec(&spec, NOW)
        .expect_err("the range is invalid")
        .to_string();
    assert!(
        message.contains("registration of device \"kitchen-lamp\""),
        "{message}"
    );
    assert!(
        message.contains("capabilities[1].properties[0].range: min 10 is not below max 0"),
        "{message}"
    );
    assert!(message.contains("set min below max"), "{message}");
}

#[test]
fn every_invalid_field_is_reported() {
    let mut spec = lamp();
    spec.device_type = "Light".into();
    spec.name = String::new();
    spec.heartbeat_timeout_secs = Some(1);
    assert_eq!(
        errors_of(&spec),
        vec!["type", "name", "heartbeat_timeout_secs"]
    );
}

#[test]
fn identifiers_are_normalized() {
    let mut spec = lamp();
    spec.identifiers = vec![
        HardwareId::new(HardwareIdKind::Mac, "00-17-88-0A-0B-0C"),
        HardwareId::new(HardwareIdKind::ZigbeeIeee, "00:15:8D:00:01:A2:B3:C4"),
        HardwareId::new(HardwareIdKind::Uuid, "123E4567-E89B-12D3-A456-426614174000"),
    ];
    let record = validate_spec(&spec, NOW).expect("the identifiers are valid");
    let values: Vec<&str> = record
        .identifiers
        .iter()
        .map(|identifier| identifier.value.as_str())
        .collect();
    assert_eq!(
        values,
        vec![
            "00:17:88:0a:0b:0c",
            "0x00158d0001a2b3c4",
            "123e4567-e89b-12d3-a456-426614174000"
        ]
    );
}

#[test]
fn spec_decodes_from_plain_json() {
    let json = r#"{
        "id": "hall-sensor",
        "type": "motion_sensor",
        "name": "Hall motion sensor",
        "power_source": "battery",
        "capabilities": [
            {"name": "motion", "properties": [{"name": "detected", "type": "boolean"}]},
            {"name": "battery", "properties": [
                {"name": "level", "type": "integer", "unit": "%", "range": {"min": 0, "max": 100}}
            ]}
        ],
        "identifiers": [{"kind": "zigbee_ieee", "value": "0x00158d0001a2b3c5"}]
    }"#;
    let spec: DeviceSpec = serde_json::from_str(json).expect("the JSON is a valid spec");
    let record = validate_spec(&spec, NOW).expect("the spec is valid");
    assert_eq!(record.power_source, PowerSource::Battery);
    assert!(record.capabilities[0].properties[0].readable);
    assert!(!record.capabilities[0].properties[0].writable);
}
