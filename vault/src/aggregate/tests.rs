use rusqlite::Connection;

use super::*;
use crate::catalog::Catalog;
use crate::desensitize::kanon::SeededSource;
use crate::desensitize::{grant_key, RefusalReason};
use crate::keys::MasterKey;
use crate::schema::{Grade, SemanticType};

fn col(name: &str, semantic_type: SemanticType, grade: Grade) -> ColumnSchema {
    ColumnSchema {
        name: name.into(),
        semantic_type,
        confidence: 1.0,
        grade,
        quasi_identifier: false,
    }
}

fn schema() -> Vec<ColumnSchema> {
    vec![
        col("address", SemanticType::Address, Grade::General2),
        col("amount", SemanticType::Amount, Grade::Important),
        col("name", SemanticType::PersonName, Grade::General3),
        col("secret", SemanticType::Code, Grade::Core),
        col("note", SemanticType::FreeText, Grade::General1),
    ]
}

fn granted() -> Vec<String> {
    ["address", "amount", "name", "secret"]
        .map(String::from)
        .into()
}

/// Six rows in 海淀区 (amounts 100..=600, one blank), two in 朝阳区.
fn dataset() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE rows (address TEXT, amount TEXT, name TEXT, secret TEXT, note TEXT)",
    )
    .unwrap();
    let rows = [
        ("北京市海淀区中关村大街1号", "100", "张三"),
        ("北京市海淀区学院路2号", "200", "李四"),
        ("北京市海淀区清华园3号", "300", "王五"),
        ("北京市海淀区北四环4号", "400", "赵六"),
        ("北京市海淀区西三环5号", "500", "孙七"),
        ("北京市海淀区五道口6号", "", "周八"),
        ("北京市朝阳区建国路7号", "9000", "吴九"),
        ("北京市朝阳区国贸8号", "9000", "郑十"),
    ];
    for (a, m, n) in rows {
        conn.execute("INSERT INTO rows VALUES (?1, ?2, ?3, 'x', NULL)", [a, m, n])
            .unwrap();
    }
    conn
}

fn key() -> PseudonymKey {
    grant_key(&MasterKey::generate().unwrap().pseudonym_root(), "g-1")
}

fn metric(function: MetricFn, column: Option<&str>) -> Metric {
    Metric {
        function,
        column: column.map(String::from),
    }
}

fn request(group_by: &[&str], metrics: Vec<Metric>) -> AggregateRequest {
    AggregateRequest {
        group_by: group_by.iter().map(|s| (*s).to_owned()).collect(),
        metrics,
        filter_columns: Vec::new(),
        noise: None,
    }
}

fn plan(req: &AggregateRequest) -> Result<AggregatePlan, AggregateError> {
    AggregatePlan::new(
        &schema(),
        &granted(),
        req,
        Tier::Two,
        &Policy::default_v1(),
        &key(),
    )
}

fn standard() -> AggregateRequest {
    request(
        &["address"],
        vec![
            metric(MetricFn::Count, None),
            metric(MetricFn::Sum, Some("amount")),
            metric(MetricFn::Avg, Some("amount")),
            metric(MetricFn::Count, Some("amount")),
        ],
    )
}

#[test]
fn groups_by_generalized_keys_and_suppresses_small_cells() {
    let p = plan(&standard()).unwrap();
    let r = run(&dataset(), &p, None, 5).unwrap();
    assert_eq!(
        r.metrics,
        ["count", "sum(amount)", "avg(amount)", "count(amount)"]
    );
    assert_eq!(r.suppressed_cells, 1, "朝阳区 has 2 rows < k");
    assert_eq!(r.cells.len(), 1);
    let cell = &r.cells[0];
    assert_eq!(cell.key, ["北京市海淀区"]);
    assert_eq!(
        cell.values,
        [Some(6.0), Some(1500.0), Some(300.0), Some(5.0)]
    );
    assert!(r.noise.is_none());

    let r = run(&dataset(), &p, None, 2).unwrap();
    assert_eq!((r.cells.len(), r.suppressed_cells), (2, 0));
    assert_eq!(r.cells[0].key, ["北京市朝阳区"]);
    assert_eq!(r.cells[0].values[1..3], [Some(18000.0), Some(9000.0)]);
}

#[test]
fn no_group_by_is_one_cell() {
    let p = plan(&request(&[], vec![metric(MetricFn::Sum, Some("amount"))])).unwrap();
    let r = run(&dataset(), &p, None, 5).unwrap();
    assert_eq!(
        r.cells,
        [Cell {
            key: vec![],
            values: vec![Some(19500.0)]
        }]
    );
}

#[test]
fn filters_are_parameters() {
    let p = plan(&standard()).unwrap();
    let f = crate::filter::parse("amount >= 300 OR name = ''' OR 1=1 --'").unwrap();
    let sql = f.to_sql(&granted()).unwrap();
    let r = run(&dataset(), &p, Some(&sql), 2).unwrap();
    let counts: Vec<_> = r
        .cells
        .iter()
        .map(|c| (c.key[0].as_str(), c.values[0]))
        .collect();
    assert_eq!(
        counts,
        [("北京市朝阳区", Some(2.0)), ("北京市海淀区", Some(3.0))]
    );
}

#[test]
fn core_columns_are_refused_by_name() {
    let cases = [
        request(&["secret"], vec![metric(MetricFn::Count, None)]),
        request(&["address"], vec![metric(MetricFn::Count, Some("secret"))]),
        AggregateRequest {
            filter_columns: vec!["secret".into()],
            ..standard()
        },
    ];
    for req in cases {
        match plan(&req) {
            Err(AggregateError::Refused(r)) => {
                assert_eq!(r.column, "secret");
                assert_eq!(r.reason, RefusalReason::CoreData);
                assert!(r.to_string().contains("\"secret\""), "{r}");
            }
            other => panic!("expected a refusal, got {:?}", other.err()),
        }
    }
}

#[test]
fn important_columns_are_measured_but_never_keys() {
    match plan(&request(&["amount"], vec![metric(MetricFn::Count, None)])) {
        Err(AggregateError::Refused(r)) => {
            assert_eq!(
                (r.column.as_str(), r.reason),
                ("amount", RefusalReason::AggregateOnly)
            );
        }
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
}

#[test]
fn columns_outside_the_grant_or_dataset_are_refused() {
    let req = request(&["note"], vec![metric(MetricFn::Count, None)]);
    assert!(matches!(plan(&req), Err(AggregateError::NotGranted { column }) if column == "note"));
    let req = request(&["nope"], vec![metric(MetricFn::Count, None)]);
    assert!(
        matches!(plan(&req), Err(AggregateError::UnknownColumn { column }) if column == "nope")
    );
}

#[test]
fn malformed_requests_name_the_field() {
    let field = |req: AggregateRequest| match plan(&req) {
        Err(AggregateError::Invalid { field, .. }) => field,
        other => panic!("expected invalid, got {:?}", other.err()),
    };
    assert_eq!(field(request(&["address"], vec![])), "metrics");
    assert_eq!(
        field(request(&[], vec![metric(MetricFn::Avg, None)])),
        "metrics[0].column"
    );
    assert_eq!(
        field(request(
            &["address", "address"],
            vec![metric(MetricFn::Count, None)]
        )),
        "group_by[1]"
    );
    let noisy_sum = AggregateRequest {
        noise: Some(Noise {
            mechanism: Mechanism::Laplace,
            epsilon: 0.5,
        }),
        ..standard()
    };
    assert_eq!(field(noisy_sum), "metrics[1].fn");
    let bad_eps = AggregateRequest {
        noise: Some(Noise {
            mechanism: Mechanism::Laplace,
            epsilon: f64::NAN,
        }),
        ..request(&[], vec![metric(MetricFn::Count, None)])
    };
    assert_eq!(field(bad_eps), "noise.epsilon");
}

/// 1000 rows in one district, so noise is visible but small.
fn big_dataset() -> Connection {
    let conn = dataset();
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 992)
         INSERT INTO rows SELECT '北京市海淀区某路' || i || '号', '1', 'x', 'x', NULL FROM n",
    )
    .unwrap();
    conn
}

#[test]
fn noise_changes_counts_but_stays_plausible() {
    let conn = big_dataset();
    for mechanism in [Mechanism::Laplace, Mechanism::DiscreteLaplace] {
        let req = AggregateRequest {
            noise: Some(Noise {
                mechanism,
                epsilon: 1.0,
            }),
            ..request(&["address"], vec![metric(MetricFn::Count, None)])
        };
        let p = plan(&req).unwrap();
        assert_eq!(p.epsilon(), 1.0);
        let mut changed = 0;
        for seed in 0..20 {
            let r = run_with_source(&conn, &p, None, 5, &mut SeededSource::new(seed)).unwrap();
            let haidian = r.cells.iter().find(|c| c.key == ["北京市海淀区"]).unwrap();
            let count = haidian.values[0].unwrap();
            assert_eq!(count.fract(), 0.0);
            assert!(
                (count - 998.0).abs() <= 25.0,
                "{mechanism:?} seed {seed}: {count}"
            );
            changed += usize::from(count != 998.0);
            assert_eq!(r.noise.unwrap().epsilon, 1.0);
        }
        assert!(
            changed >= 5,
            "{mechanism:?}: noise changed only {changed} of 20"
        );
        let a = run_with_source(&conn, &p, None, 5, &mut SeededSource::new(7)).unwrap();
        let b = run_with_source(&conn, &p, None, 5, &mut SeededSource::new(7)).unwrap();
        assert_eq!(a, b, "a fixed seed reproduces");
        assert!(run(&conn, &p, None, 5).is_ok(), "system randomness works");
    }
}

#[test]
fn system_source_is_not_constant() {
    let mut s = SystemSource::new();
    let draws: Vec<u64> = (0..200).map(|_| s.next_u64()).collect();
    assert!(!s.failed());
    let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
    assert!(distinct.len() > 190);
}

#[test]
fn epsilon_budget_is_charged_and_refused_when_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate().unwrap();
    let mut catalog =
        Catalog::create(&dir.path().join("catalog.db"), &master.catalog_key()).unwrap();
    assert_eq!(epsilon_spent(&catalog, "g-1").unwrap(), 0.0);
    assert_eq!(spend_epsilon(&mut catalog, "g-1", 0.4, 1.0).unwrap(), 0.4);
    assert_eq!(spend_epsilon(&mut catalog, "g-1", 0.6, 1.0).unwrap(), 1.0);
    match spend_epsilon(&mut catalog, "g-1", 0.01, 1.0) {
        Err(e @ AggregateError::BudgetExhausted { .. }) => {
            assert!(e.to_string().contains("exhausted"), "{e}");
        }
        other => panic!("expected exhaustion, got {other:?}"),
    }
    assert_eq!(
        epsilon_spent(&catalog, "g-1").unwrap(),
        1.0,
        "a refusal spends nothing"
    );
    assert_eq!(
        spend_epsilon(&mut catalog, "g-2", 0.5, 1.0).unwrap(),
        0.5,
        "per grant"
    );
    catalog.put_meta("dp-spent:g-3", "NaN").unwrap();
    assert!(matches!(
        spend_epsilon(&mut catalog, "g-3", 0.1, 1.0),
        Err(AggregateError::BudgetCorrupt { .. })
    ));
}
