//! Issue 14 point 4: `nanoclaw doctor` finds and explains problems, with a fix for each, as
//! text or JSON, and its exit code says how bad the worst one is. Docker is pointed at a socket
//! that does not exist, so these run (and fail the docker check) on any host.

use crate::support::Env;

fn doctor(env: &Env, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["doctor", "--json"];
    all.extend(args);
    let run = env.run(&all);
    let json = serde_json::from_str(&run.stdout).unwrap_or_else(|err| {
        panic!(
            "doctor --json prints JSON ({err}):\n{}{}",
            run.stdout, run.stderr
        )
    });
    (run.code, json)
}

fn check<'a>(json: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|check| check["id"] == id)
        .unwrap_or_else(|| panic!("no check `{id}` in {json:#}"))
}

#[test]
fn issue_14_doctor_explains_each_problem_with_its_fix_and_exits_by_the_worst() {
    let env = Env::new("doctor");
    let socket = env.root.path().join("no-docker.sock");
    env.set_var("DOCKER_HOST", &format!("unix://{}", socket.display()));
    env.set_var("ANTHROPIC_API_KEY", "");
    env.set_var("CLAUDE_CODE_OAUTH_TOKEN", "");
    env.write(
        "agents.yaml",
        "kind: agent\nname: helper\nprovider: claude\n---\nkind: channel\nname: terminal\nchannel_type: cli\nplatform_id: local\n",
    );
    let (code, json) = doctor(&env, &[]);
    assert_eq!(code, 1, "a failure exits 1:\n{json:#}");
    let docker = check(&json, "docker");
    assert_eq!(docker["outcome"], "fail");
    assert!(
        docker["fix"].as_str().unwrap().contains("DOCKER_HOST"),
        "{docker}"
    );
    assert_eq!(check(&json, "images")["outcome"], "skipped");
    let credentials = check(&json, "credentials");
    assert_eq!(credentials["outcome"], "fail", "{credentials}");
    assert!(
        credentials["fix"]
            .as_str()
            .unwrap()
            .contains("nanoclaw auth set anthropic"),
        "{credentials}"
    );
    assert_eq!(check(&json, "manifests")["outcome"], "ok");
    assert_eq!(check(&json, "channels")["outcome"], "ok");
    assert_eq!(
        check(&json, "data-dir")["outcome"],
        "warn",
        "not created yet"
    );
    assert!(
        !env.data().exists(),
        "doctor changes nothing: it does not even create the data dir"
    );

    // The text form shows the same findings with their fixes.
    let text = env.run(&["doctor"]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains("[FAIL] credentials:"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("fix: `nanoclaw auth set anthropic`"),
        "{}",
        text.stdout
    );
}

#[test]
fn issue_14_doctor_names_invalid_manifests_and_a_data_dir_others_can_write() {
    let env = Env::new("doctor-invalid");
    env.set_var("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    env.write("agents.yaml", "kind: agent\nname: Not A Name\n");
    std::fs::create_dir_all(env.data()).expect("data dir");
    std::fs::set_permissions(
        env.data(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let (code, json) = doctor(&env, &[]);
    assert_eq!(code, 1);
    let manifests = check(&json, "manifests");
    assert_eq!(manifests["outcome"], "fail");
    assert!(
        manifests["fix"]
            .as_str()
            .unwrap()
            .contains("nanoclaw validate"),
        "{manifests}"
    );
    assert_eq!(check(&json, "applied")["outcome"], "skipped");
    let data = check(&json, "data-dir");
    assert_eq!(data["outcome"], "fail", "{data}");
    assert!(
        data["fix"].as_str().unwrap().contains("chmod 700"),
        "{data}"
    );
}
