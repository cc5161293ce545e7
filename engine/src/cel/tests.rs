#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::env::{self, compile, is_known};
use super::*;

fn eval(source: &str, object: Value) -> Result<Value, String> {
    let c = compile(source)?;
    env::with_scope(|mut ctx| {
        ctx.add_variable_from_value("object", env::to_cel(&object));
        ctx.resolve(&c.expr).map(|v| env::to_json(&v)).map_err(|e| env::error_text(&e))
    })
}

#[test]
fn missing_functions_and_macros_are_load_errors_naming_them() {
    let e = compile("object.items.transformMapEntry(k, v, {k: v})").unwrap_err();
    assert!(e.contains("`transformMapEntry`") && e.contains("does not implement"), "{e}");
    let e = compile("nosuch.lib(1)").unwrap_err();
    assert!(e.contains("`nosuch.lib`"), "{e}");
    // The cel crate panics on message literals: they are refused at load.
    let e = compile("Foo{a: 1} == object").unwrap_err();
    assert!(e.contains("struct"), "{e}");
    let e = compile("objet.spec.replicas <= 5").unwrap_err();
    assert!(e.contains("undeclared identifier `objet`"), "{e}");
    compile("object.items.all(i, i.x) && [1].map(x, [x].exists(y, y == x)) && cel.bind(z, 1, z == 1)").unwrap();
    let e = compile("object.items.all(i, j > 0)").unwrap_err();
    assert!(e.contains("`j`"), "{e}");
    let e = compile("object.spec.replicas <=").unwrap_err();
    assert!(e.starts_with("does not compile"), "{e}");
    // What the Kubernetes environment has (checked in conformance/vap against kube-apiserver).
    for ok in [
        "[2, 1].sortBy(x, x)",
        "cel.bind(x, 1, x + 1)",
        "[1].all(i, v, v > i)",
        "[1].exists(i, v, v == 1)",
        "[1].existsOne(i, v, v == 1)",
        "{'a': 1}.transformMap(k, v, v + 1)",
        "[1].transformList(i, v, i < 1, v)",
        "'%s'.format(['x'])",
        "quantity('1Gi').isGreaterThan(quantity('1Mi'))",
        "cidr('10.0.0.0/8').containsIP(ip('10.1.1.1'))",
        "url('https://x').getHost()",
        "'abc'.matches('^a') && 'abc'.find('b') == 'b'",
        "optional.of(1).orValue(2)",
        "object.?a.?b.orValue(0)",
        "sets.contains([1], [1])",
    ] {
        compile(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn every_function_of_the_environment_is_found_by_the_probe() {
    // The names kube-cel 0.8 and cel 0.13 register, and palisade's own: the probe that
    // decides "missing" must find each (and must not panic calling any of them).
    let names = "add asApproximateFloat asInteger base64.decode base64.encode charAt cidr compareTo containsCIDR \
        containsIP distinct family find findAll first flatten format indexOf ip ip.isCanonical isCIDR isGreaterThan \
        isIP isInteger isLessThan isQuantity isSemver isSorted isURL join jsonpatch.escapeKey last lastIndexOf \
        lists.range lowerAscii major masked math.abs math.greatest math.least minor patch prefixLength quantity \
        replace reverse semver sets.contains sets.equivalent sets.intersects sign slice sort split string \
        strings.quote sub substring sum trim upperAscii url validate size contains startsWith endsWith matches \
        duration timestamp optional.of optional.none hasValue orValue value int uint double bytes cel.bind sortBy \
        transformList transformMap existsOne";
    for name in names.split_whitespace() {
        let (target, short) = match name.rsplit_once('.') {
            Some((t, n)) => (Some(t), n),
            None => (None, name),
        };
        assert!(is_known(short, target) || is_known(short, Some("")), "{name} not found");
    }
    assert!(!is_known("sortByKey", Some("")));
}

#[test]
fn extensions_evaluate_as_in_cel_go() {
    let o = json!({"items": [{"n": "b", "p": 2}, {"n": "a", "p": 1}], "labels": {"x": "1"}});
    assert_eq!(eval("object.items.sortBy(i, i.p).map(i, i.n)", o.clone()), Ok(json!(["a", "b"])));
    assert_eq!(eval("cel.bind(n, size(object.items), n * n)", o.clone()), Ok(json!(4)));
    assert_eq!(eval("object.items.all(i, v, v.p >= i)", o.clone()), Ok(json!(true)));
    assert_eq!(eval("object.items.all(i, v, v.p > i)", o.clone()), Ok(json!(false)));
    assert_eq!(eval("object.labels.exists(k, v, k == 'x' && v == '1')", o.clone()), Ok(json!(true)));
    assert_eq!(eval("object.items.existsOne(i, v, v.p == 1)", o.clone()), Ok(json!(true)));
    assert_eq!(eval("object.items.transformList(i, v, i > 0, v.n)", o.clone()), Ok(json!(["a"])));
    assert_eq!(eval("object.labels.transformMap(k, v, v + '!')", o.clone()), Ok(json!({"x": "1!"})));
    // `x.?f` on a plain map: none when absent (the cel crate alone fails with no such key).
    assert_eq!(eval("object.?missing.?deeper.orValue('d')", o.clone()), Ok(json!("d")));
    assert_eq!(eval("object.?labels.?x.orValue('d')", o.clone()), Ok(json!("1")));
    assert_eq!(eval("object.nope == 1", o).unwrap_err(), "no such key: nope");
}

const POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: max-replicas}
spec:
  validations:
    - expression: "object.spec.replicas <= params.max"
      messageExpression: "'at most ' + string(params.max) + ' replicas'"
"#;

fn deployment(replicas: i64) -> crate::Input {
    crate::Input::from_object(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {"replicas": replicas}
    }))
    .unwrap()
}

#[test]
fn a_bundle_policy_gets_its_parameters_as_params() {
    let mut backend = CelBackend::default();
    let slot = backend.load("x.yaml", POLICY, &json!({"max": 3})).unwrap();
    assert!(backend.applies(slot, &deployment(1)), "without matchConstraints the bundle's match decides");
    let e = backend.evaluate(&deployment(5), &[slot]);
    let findings = e[0].outcome.clone().unwrap();
    assert_eq!(findings[0].message, "at most 3 replicas");
    assert!(backend.evaluate(&deployment(3), &[slot])[0].outcome.clone().unwrap().is_empty());
}

#[test]
fn load_errors_name_the_file_field_and_expression() {
    let mut backend = CelBackend::default();
    let bad = POLICY.replace("object.spec.replicas <= params.max", "object.spec.replicas.sortByKey(x, x)");
    let e = backend.load("rules/x.yaml", &bad, &json!({})).unwrap_err();
    assert!(
        e.starts_with("rules/x.yaml: ValidatingAdmissionPolicy max-replicas: spec.validations[0].expression"),
        "{e}"
    );
    assert!(e.contains("`sortByKey`"), "{e}");
    let e = backend.load("rules/y.yaml", "kind: ConfigMap\napiVersion: v1\n", &json!({})).unwrap_err();
    assert_eq!(e, "rules/y.yaml: expected exactly one ValidatingAdmissionPolicy");
    let two = POLICY.replace("validations:\n    - expression", "validations: []\n  x:\n    - expression");
    let e = backend.load("z.yaml", &two, &json!({})).unwrap_err();
    assert!(e.contains("may not both be empty"), "{e}");
    let conditions = POLICY.replace("spec:\n", "spec:\n  matchConditions: [{name: a, expression: \"variables.x\"}]\n");
    let e = backend.load("m.yaml", &conditions, &json!({})).unwrap_err();
    assert!(e.contains("spec.matchConditions[0]: match conditions cannot use `variables`"), "{e}");
    let reserved = POLICY.replace("spec:\n", "spec:\n  variables: [{name: namespace, expression: \"1\"}]\n");
    let e = backend.load("r.yaml", &reserved, &json!({})).unwrap_err();
    assert!(e.contains("spec.variables[0].name: \"namespace\" must be a valid CEL identifier"), "{e}");
}

#[test]
fn authorizer_is_an_error_for_that_policy_not_a_pass() {
    let mut backend = CelBackend::default();
    let p = POLICY.replace(
        "object.spec.replicas <= params.max",
        "authorizer.group('').resource('pods').check('create').allowed()",
    );
    let slot = backend.load("a.yaml", &p, &json!({})).unwrap();
    let failure = backend.evaluate(&deployment(1), &[slot])[0].outcome.clone().unwrap_err();
    assert!(failure.message.contains("not available offline"), "{}", failure.message);
}

#[test]
fn a_validation_reading_a_failed_variable_fails_with_its_cause() {
    let mut backend = CelBackend::default();
    let p = POLICY
        .replace("spec:\n", "spec:\n  variables: [{name: x, expression: \"object.spec.nope\"}]\n")
        .replace("object.spec.replicas <= params.max", "variables.x > 0");
    let slot = backend.load("v.yaml", &p, &json!({"max": 3})).unwrap();
    let findings = backend.evaluate(&deployment(1), &[slot])[0].outcome.clone().unwrap();
    assert_eq!(
        findings[0].message,
        "expression 'variables.x > 0' resulted in error: composited variable \"x\" fails to evaluate: no such key: nope"
    );
    // Through a chain of variables, and not for a neighbour whose name it prefixes.
    let p = POLICY
        .replace(
            "spec:\n",
            "spec:\n  variables: [{name: x, expression: \"object.spec.nope\"}, {name: y, expression: \"variables.x + 1\"}, {name: xs, expression: \"object.spec\"}]\n",
        )
        .replace("object.spec.replicas <= params.max", "variables.y > 0");
    let slot = backend.load("w.yaml", &p, &json!({"max": 3})).unwrap();
    let findings = backend.evaluate(&deployment(1), &[slot])[0].outcome.clone().unwrap();
    let chained =
        "composited variable \"y\" fails to evaluate: composited variable \"x\" fails to evaluate: no such key: nope";
    assert!(findings[0].message.ends_with(chained), "{}", findings[0].message);
    let p = p.replace("variables.y > 0", "variables.xs.other > 0");
    let slot = backend.load("z.yaml", &p, &json!({"max": 3})).unwrap();
    let findings = backend.evaluate(&deployment(1), &[slot])[0].outcome.clone().unwrap();
    assert!(findings[0].message.ends_with("resulted in error: no such key: other"), "{}", findings[0].message);
}

#[test]
fn validation_actions_map_onto_palisade_actions() {
    use crate::decision::Action;
    let a = |v: &[&str]| vap::action(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(a(&["Deny", "Audit"]), Ok(Action::Deny));
    assert_eq!(a(&["Warn", "Audit"]), Ok(Action::Warn));
    assert_eq!(a(&["Audit"]), Ok(Action::Audit));
    assert!(a(&["Deny", "Warn"]).unwrap_err().contains("may not be used together"));
    assert!(a(&[]).is_err() && a(&["Block"]).is_err());
}

#[test]
fn audit_annotations_travel_in_the_finding_details() {
    let mut backend = CelBackend::default();
    let p = POLICY.replace(
        "spec:\n",
        "spec:\n  auditAnnotations:\n    - {key: replicas, valueExpression: \"string(object.spec.replicas)\"}\n    - {key: skipped, valueExpression: \"null\"}\n",
    );
    let slot = backend.load("a.yaml", &p, &json!({"max": 3})).unwrap();
    let findings = backend.evaluate(&deployment(5), &[slot])[0].outcome.clone().unwrap();
    let details = findings[0].details.clone().unwrap();
    assert_eq!(details["auditAnnotations"], json!({"max-replicas/replicas": "5"}), "{details}");
    assert_eq!(details["validatingAdmissionPolicy"], "max-replicas");
}
