/-!
# Demo: open goals for segpilot

Each `sorry` is a hole for segpilot to fill: open this file in an editor with segpilot
running, or give it to `segpilot prove`. Some start with several goals, so a checked
segment can close one branch and leave the rest. `lake build Demo` checks the file
(warnings for each `sorry`).
-/

namespace SegpilotDemo

theorem add_comm_demo (a b : Nat) : a + b = b + a := by
  sorry

theorem and_swap_demo (p q : Prop) (h : p ∧ q) : q ∧ p := by
  sorry

theorem or_swap_demo (p q : Prop) : p ∨ q → q ∨ p := by
  intro h
  sorry

theorem length_swap_demo (xs ys : List Nat) : (xs ++ ys).length = (ys ++ xs).length := by
  sorry

theorem exists_double_demo (n : Nat) : ∃ k, n + n = 2 * k := by
  sorry

theorem three_goals_demo (n : Nat) : n ≤ n ∧ 0 ≤ n ∧ n < n + 1 := by
  refine ⟨?_, ?_, ?_⟩
  · sorry
  · sorry
  · sorry

end SegpilotDemo
