# Shared by the experiment scripts (source it; needs $PY).
# continue_at_gap <workdir> <gap> <num_steps>: rewrites the workdir's
# config.json so that `launch.train` resumes its run at another recall gap
# with a longer schedule (the hand-made curricula of the README runs; a new
# run would use config.data.curriculum instead).
continue_at_gap() {
  $PY - "$1" "$2" "$3" <<'PYEOF'
import json, sys
path, gap, steps = sys.argv[1] + "/config.json", int(sys.argv[2]), int(sys.argv[3])
config = json.load(open(path))
config["data"]["synthetic"]["min_recall_gap"] = gap
config["num_steps"] = steps
json.dump(config, open(path, "w"), indent=2, sort_keys=True)
PYEOF
}
