//! Queries with paging, the capability index, and groups.

use std::collections::BTreeSet;

use alicia_core::ManualClock;

use super::support::{START, id, lamp, quiet_config, sensor, start};
use crate::registry::{
    AvailabilityState, CAPABILITY_INDEX, Capability, DeviceQuery, DeviceSpec, DeviceUpdate,
    GroupId, RegistryClient, RegistryError,
};

/// Reads every page of `query` and returns the device ids in order, with the page sizes.
async fn all_pages(client: &RegistryClient, query: DeviceQuery) -> (Vec<String>, Vec<usize>) {
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut query = query;
    // Bounded: no test here reads more than 10,000 devices, which is 10 pages of 1,000.
    for _ in 0..100 {
        let page = client.query(query.clone()).await.unwrap();
        sizes.push(page.devices.len());
        ids.extend(page.devices.iter().map(|view| view.record.id.to_string()));
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => break,
        }
    }
    (ids, sizes)
}

#[tokio::test]
async fn capability_query_pages_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    for index in 0..10 {
        registry
            .client
            .register(lamp(&format!("lamp-{index:02}")))
            .await
            .unwrap();
        registry
            .client
            .register(sensor(&format!("sensor-{index:02}")))
            .await
            .unwrap();
    }

    let query = DeviceQuery {
        capability: Some("brightness".into()),
        limit: 4,
        ..DeviceQuery::default()
    };
    let (ids, sizes) = all_pages(&registry.client, query).await;

    let expected: Vec<String> = (0..10).map(|index| format!("lamp-{index:02}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(sizes, vec![4, 4, 2]);
    registry.stop().await;
}

#[tokio::test]
async fn query_filters_combine() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    let mut hall_lamp = lamp("lamp-2");
    hall_lamp.location = Some("Hall".into());
    registry.client.register(hall_lamp).await.unwrap();
    registry.client.register(sensor("sensor-1")).await.unwrap();
    registry.client.heartbeat(&id("lamp-2")).await.unwrap();

    let cases = [
        (
            "type",
            DeviceQuery {
                device_type: Some("light".into()),
                ..DeviceQuery::default()
            },
            vec!["lamp-1", "lamp-2"],
        ),
        (
            "location",
            DeviceQuery {
                location: Some("Hall".into()),
                ..DeviceQuery::default()
            },
            vec!["lamp-2", "sensor-1"],
        ),
        (
            "type and location",
            DeviceQuery {
                device_type: Some("light".into()),
                location: Some("Hall".into()),
                ..DeviceQuery::default()
            },
            vec!["lamp-2"],
        ),
        (
            "status online",
            DeviceQuery {
                status: Some(AvailabilityState::Online),
                ..DeviceQuery::default()
            },
            vec!["lamp-2"],
        ),
        (
            "status unknown with capability",
            DeviceQuery {
                status: Some(AvailabilityState::Unknown),
                capability: Some("on_off".into()),
                ..DeviceQuery::default()
            },
            vec!["lamp-1"],
        ),
        (
            "no filter",
            DeviceQuery::default(),
            vec!["lamp-1", "lamp-2", "sensor-1"],
        ),
        (
            "no match",
            DeviceQuery {
                capability: Some("temperature".into()),
                ..DeviceQuery::default()
            },
            vec![],
        ),
    ];
    for (case, query, expected) in cases {
        let (ids, _) = all_pages(&registry.client, query).await;
        assert_eq!(ids, expected, "case {case:?}");
    }
    registry.stop().await;
}

#[tokio::test]
async fn query_rejects_bad_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;

    for limit in [0, 1001] {
        let query = DeviceQuery {
            limit,
            ..DeviceQuery::default()
        };
        let error = registry.client.query(query).await.unwrap_err();
        assert!(
            error
                .field_errors()
                .is_some_and(|errors| errors.has_field("limit")),
            "limit {limit}: {error}"
        );
    }
    registry.stop().await;
}

#[tokio::test]
async fn capability_index_follows_updates() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();

    let update = DeviceUpdate {
        capabilities: Some(vec![Capability::new("on_off")]),
        ..DeviceUpdate::default()
    };
    registry.client.update(&id("lamp-1"), update).await.unwrap();
    registry.stop().await;

    let store = alicia_core::Store::open(dir.path(), clock.shared())
        .unwrap()
        .store;
    let keys: BTreeSet<String> = store
        .begin_read()
        .unwrap()
        .iter(&CAPABILITY_INDEX)
        .unwrap()
        .map(|entry| entry.unwrap().0)
        .collect();
    assert_eq!(keys, BTreeSet::from(["on_off\0lamp-1".to_owned()]));
}

#[tokio::test]
async fn deregistered_device_leaves_index() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.client.register(lamp("lamp-2")).await.unwrap();
    registry.client.deregister(&id("lamp-1")).await.unwrap();

    let query = DeviceQuery {
        capability: Some("brightness".into()),
        ..DeviceQuery::default()
    };
    let (ids, _) = all_pages(&registry.client, query).await;

    assert_eq!(ids, vec!["lamp-2"]);
    registry.stop().await;
}

#[tokio::test]
async fn group_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.client.register(lamp("lamp-2")).await.unwrap();
    let group = GroupId::new("kitchen").unwrap();

    registry
        .client
        .create_group(&group, "Kitchen")
        .await
        .unwrap();
    let duplicate = registry.client.create_group(&group, "Again").await;
    assert!(matches!(duplicate, Err(RegistryError::GroupExists { .. })));

    registry
        .client
        .add_member(&group, &id("lamp-1"))
        .await
        .unwrap();
    registry
        .client
        .add_member(&group, &id("lamp-2"))
        .await
        .unwrap();
    let unknown = registry.client.add_member(&group, &id("ghost")).await;
    assert!(matches!(unknown, Err(RegistryError::DeviceNotFound { .. })));

    let renamed = registry
        .client
        .rename_group(&group, "Kitchen lights")
        .await
        .unwrap();
    assert_eq!(renamed.name, "Kitchen lights");

    let removed = registry
        .client
        .remove_member(&group, &id("lamp-2"))
        .await
        .unwrap();
    assert_eq!(removed.members.len(), 1);

    let query = DeviceQuery {
        group: Some(group.clone()),
        ..DeviceQuery::default()
    };
    let (ids, _) = all_pages(&registry.client, query).await;
    assert_eq!(ids, vec!["lamp-1"]);

    registry.client.delete_group(&group).await.unwrap();
    let missing = registry.client.get_group(&group).await;
    assert!(matches!(missing, Err(RegistryError::GroupNotFound { .. })));
    registry.stop().await;
}

#[tokio::test]
async fn group_available_when_any_member_online() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.client.register(lamp("lamp-2")).await.unwrap();
    let group = GroupId::new("kitchen").unwrap();
    registry
        .client
        .create_group(&group, "Kitchen")
        .await
        .unwrap();
    registry
        .client
        .add_member(&group, &id("lamp-1"))
        .await
        .unwrap();
    registry
        .client
        .add_member(&group, &id("lamp-2"))
        .await
        .unwrap();

    let before = registry.client.get_group(&group).await.unwrap();
    assert!(!before.available, "no member is online yet");

    registry.client.heartbeat(&id("lamp-2")).await.unwrap();
    let after = registry.client.get_group(&group).await.unwrap();
    assert!(after.available);
    registry.stop().await;
}

#[tokio::test]
async fn deregistration_leaves_groups() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    let group = GroupId::new("kitchen").unwrap();
    registry
        .client
        .create_group(&group, "Kitchen")
        .await
        .unwrap();
    registry
        .client
        .add_member(&group, &id("lamp-1"))
        .await
        .unwrap();

    registry.client.deregister(&id("lamp-1")).await.unwrap();

    let view = registry.client.get_group(&group).await.unwrap();
    assert!(view.group.members.is_empty());
    registry.stop().await;
}

/// Rooms of the scale test. Device `i` is in `SCALE_ROOMS[i % 7]`, except every eleventh
/// device, which has no location.
const SCALE_ROOMS: [&str; 7] = [
    "Kitchen", "Hall", "Office", "Bedroom", "Bathroom", "Garage", "Garden",
];

/// Returns the capabilities of scale device `i`: `on_off` for even `i`, `brightness` for
/// multiples of 3, `temperature` for multiples of 5 and `co2` for `i % 1000 == 7`.
fn scale_capabilities(index: usize) -> Vec<&'static str> {
    let rules: [(&str, bool); 4] = [
        ("on_off", index.is_multiple_of(2)),
        ("brightness", index.is_multiple_of(3)),
        ("temperature", index.is_multiple_of(5)),
        ("co2", index % 1000 == 7),
    ];
    rules
        .into_iter()
        .filter_map(|(name, has)| has.then_some(name))
        .collect()
}

fn scale_location(index: usize) -> Option<&'static str> {
    (!index.is_multiple_of(11)).then(|| SCALE_ROOMS[index % SCALE_ROOMS.len()])
}

fn scale_spec(index: usize) -> DeviceSpec {
    let mut spec = DeviceSpec::new(
        format!("dev-{index:05}"),
        "generic",
        format!("Device {index}"),
    );
    spec.location = scale_location(index).map(str::to_owned);
    spec.capabilities = scale_capabilities(index)
        .into_iter()
        .map(Capability::new)
        .collect();
    spec
}

#[tokio::test]
async fn capability_and_location_sets_at_scale() {
    const DEVICES: usize = 10_000;
    // Registrations run concurrently in chunks. The test drains the registry's event channel
    // between chunks, and each chunk's events fit in it.
    const CHUNK: usize = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut registry = start(dir.path(), &clock, quiet_config()).await;
    for chunk in 0..DEVICES / CHUNK {
        let mut tasks = Vec::with_capacity(CHUNK);
        for index in chunk * CHUNK..(chunk + 1) * CHUNK {
            let client = registry.client.clone();
            tasks.push(tokio::spawn(async move {
                client.register(scale_spec(index)).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        registry.drain();
    }
    assert_eq!(registry.client.stats().await.unwrap().devices, DEVICES);

    let expected_ids = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..DEVICES)
            .filter(|index| keep(*index))
            .map(|index| format!("dev-{index:05}"))
            .collect()
    };

    for capability in ["on_off", "brightness", "temperature", "co2", "motion"] {
        let query = DeviceQuery {
            capability: Some(capability.into()),
            limit: 1000,
            ..DeviceQuery::default()
        };
        let (ids, _) = all_pages(&registry.client, query).await;
        let expected = expected_ids(&|index| scale_capabilities(index).contains(&capability));
        assert_eq!(ids.len(), expected.len(), "capability {capability}: count");
        assert_eq!(ids, expected, "capability {capability}: ids");
    }

    for room in SCALE_ROOMS {
        let query = DeviceQuery {
            location: Some(room.into()),
            limit: 1000,
            ..DeviceQuery::default()
        };
        let (ids, _) = all_pages(&registry.client, query).await;
        let expected = expected_ids(&|index| scale_location(index) == Some(room));
        assert_eq!(ids.len(), expected.len(), "location {room}: count");
        assert_eq!(ids, expected, "location {room}: ids");
    }

    let query = DeviceQuery {
        capability: Some("brightness".into()),
        location: Some("Office".into()),
        limit: 1000,
        ..DeviceQuery::default()
    };
    let (ids, _) = all_pages(&registry.client, query).await;
    let expected = expected_ids(&|index| {
        scale_capabilities(index).contains(&"brightness") && scale_location(index) == Some("Office")
    });
    assert_eq!(ids, expected, "brightness in the office");
    registry.stop().await;
}
