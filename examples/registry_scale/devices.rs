//! The devices the program registers: four kinds in turn, each with a few capabilities, hardware
//! identifiers and metadata, spread over twenty rooms.

use std::collections::BTreeMap;

use alicia::actors::registry::{
    Capability, DeviceSpec, HardwareId, HardwareIdKind, PowerSource, Property, ValueType,
};

/// The device kinds, in the order device numbers cycle through them.
const KINDS: [&str; 4] = ["lamp", "sensor", "plug", "thermostat"];

/// Locations; device `index` is in room `(index / 4) % 20`.
pub const ROOMS: [&str; 20] = [
    "Kitchen",
    "Hall",
    "Living room",
    "Dining room",
    "Bedroom 1",
    "Bedroom 2",
    "Bedroom 3",
    "Bathroom",
    "Toilet",
    "Office",
    "Garage",
    "Garden",
    "Attic",
    "Cellar",
    "Laundry",
    "Landing",
    "Porch",
    "Pantry",
    "Nursery",
    "Workshop",
];

/// The capability that one device in four (the lamps) has.
pub const COMMON_CAPABILITY: &str = "brightness";

/// The capability that one device in 1,000 (a sensor) has.
pub const RARE_CAPABILITY: &str = "co2";

/// Returns the id of device number `index`, such as `lamp-000004`. Ids sort in number order
/// within a kind because the number is zero-padded to six digits.
pub fn device_id(index: usize) -> String {
    format!("{}-{index:06}", KINDS[index % KINDS.len()])
}

/// Reads the device number back out of a device id.
pub fn index_of(id: &str) -> Option<usize> {
    let (_, number) = id.rsplit_once('-')?;
    number.parse().ok()
}

/// Returns the location of device number `index`.
pub fn location(index: usize) -> &'static str {
    ROOMS[(index / KINDS.len()) % ROOMS.len()]
}

/// Tells whether device number `index` has the capability `name`, without building its spec.
pub fn has_capability(index: usize, name: &str) -> bool {
    match name {
        COMMON_CAPABILITY => index.is_multiple_of(KINDS.len()),
        RARE_CAPABILITY => index % 1000 == 1,
        _ => spec(index)
            .capabilities
            .iter()
            .any(|capability| capability.name == name),
    }
}

/// Counts the devices among the first `devices` that have the capability `name`.
pub fn count_with(devices: usize, name: &str) -> usize {
    (0..devices)
        .filter(|index| has_capability(*index, name))
        .count()
}

/// Builds the registration request of device number `index`.
pub fn spec(index: usize) -> DeviceSpec {
    let kind = KINDS[index % KINDS.len()];
    let mut spec = DeviceSpec::new(
        device_id(index),
        device_type(kind),
        format!("{} {kind} {index}", location(index)),
    );
    spec.location = Some(location(index).to_owned());
    spec.firmware_version = Some(format!("1.{}.{}", index % 7, index % 13));
    spec.metadata = BTreeMap::from([
        ("vendor".to_owned(), vendor(kind).to_owned()),
        ("model".to_owned(), format!("{kind}-{}", index % 5)),
    ]);

    match kind {
        "lamp" => {
            spec.capabilities = vec![
                on_off(),
                Capability::new(COMMON_CAPABILITY).with_property(percent("level").writable()),
                Capability::new("color_temperature").with_property(
                    Property::new("kelvin", ValueType::Integer)
                        .with_unit("K")
                        .with_range(2200.0, 6500.0, Some(100.0))
                        .writable(),
                ),
            ];
            spec.identifiers = vec![zigbee(index)];
        }
        "sensor" => {
            spec.capabilities = vec![
                Capability::new("motion")
                    .with_property(Property::new("detected", ValueType::Boolean)),
                Capability::new("temperature").with_property(
                    Property::new("value", ValueType::Number)
                        .with_unit("°C")
                        .with_range(-40.0, 85.0, None),
                ),
                Capability::new("battery").with_property(percent("level")),
            ];
            if has_capability(index, RARE_CAPABILITY) {
                spec.capabilities.push(
                    Capability::new(RARE_CAPABILITY).with_property(
                        Property::new("ppm", ValueType::Integer)
                            .with_unit("ppm")
                            .with_range(0.0, 5000.0, Some(1.0)),
                    ),
                );
            }
            spec.identifiers = vec![zigbee(index)];
            spec.power_source = PowerSource::Battery;
        }
        "plug" => {
            spec.capabilities = vec![
                on_off(),
                Capability::new("power").with_property(
                    Property::new("watts", ValueType::Number)
                        .with_unit("W")
                        .with_range(0.0, 3680.0, None),
                ),
            ];
            spec.identifiers = vec![
                HardwareId::new(HardwareIdKind::Mac, mac(index)),
                HardwareId::new(HardwareIdKind::Serial, format!("PLG{index:08}")),
            ];
        }
        _ => {
            spec.capabilities = vec![
                Capability::new("temperature").with_property(
                    Property::new("value", ValueType::Number)
                        .with_unit("°C")
                        .with_range(5.0, 30.0, Some(0.5)),
                ),
                Capability::new("mode").with_property(
                    Property::new("value", ValueType::Enum)
                        .with_allowed_values(&["off", "heat", "eco"])
                        .writable(),
                ),
            ];
            spec.identifiers = vec![HardwareId::new(
                HardwareIdKind::Serial,
                format!("TRV{index:08}"),
            )];
            spec.heartbeat_timeout_secs = Some(900);
        }
    }
    spec
}

fn device_type(kind: &str) -> &'static str {
    match kind {
        "lamp" => "light",
        "sensor" => "multi_sensor",
        "plug" => "smart_plug",
        _ => "thermostat",
    }
}

fn vendor(kind: &str) -> &'static str {
    match kind {
        "lamp" => "Lumen Works",
        "sensor" => "Sensa",
        "plug" => "Plugwise Home",
        _ => "Thermo Control",
    }
}

fn on_off() -> Capability {
    Capability::new("on_off").with_property(Property::new("on", ValueType::Boolean).writable())
}

fn percent(name: &str) -> Property {
    Property::new(name, ValueType::Integer)
        .with_unit("%")
        .with_range(0.0, 100.0, Some(1.0))
}

/// Builds a Zigbee IEEE address unique to device `index`.
fn zigbee(index: usize) -> HardwareId {
    HardwareId::new(
        HardwareIdKind::ZigbeeIeee,
        format!("0x00178801{:08x}", index as u32),
    )
}

/// Builds a MAC address unique to device `index` (for up to 2^24 devices).
fn mac(index: usize) -> String {
    let bytes = (index as u32).to_be_bytes();
    format!(
        "02:00:00:{:02x}:{:02x}:{:02x}",
        bytes[1], bytes[2], bytes[3]
    )
}
