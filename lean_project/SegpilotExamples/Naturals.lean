/-!
# Natural numbers

Proofs over `Nat` whose goal count moves: `induction` and `cases` open one goal per
constructor, `cases` on a hypothesis `∃`/`∨` branches, and each branch closes on its own.
Core Lean only.
-/

namespace SegpilotExamples

/-- Doubling by recursion, so that there is something to prove by induction. -/
def double : Nat → Nat
  | 0 => 0
  | n + 1 => double n + 2

theorem zero_add_left (n : Nat) : 0 + n = n := by
  induction n with
  | zero => rfl
  | succ n ih => rw [← Nat.add_assoc, ih]

theorem double_eq_two_mul (n : Nat) : double n = 2 * n := by
  induction n with
  | zero => rfl
  | succ n ih =>
    simp only [double]
    omega

theorem exists_half (n : Nat) : ∃ k, n = 2 * k ∨ n = 2 * k + 1 := by
  induction n with
  | zero => exact ⟨0, Or.inl rfl⟩
  | succ n ih =>
    cases ih with
    | intro k hk =>
      cases hk with
      | inl h => exact ⟨k, Or.inr (by omega)⟩
      | inr h => exact ⟨k + 1, Or.inl (by omega)⟩

theorem zero_or_pos (n : Nat) : n = 0 ∨ 0 < n := by
  cases n with
  | zero =>
    apply Or.inl
    rfl
  | succ m =>
    apply Or.inr
    exact Nat.succ_pos m

theorem succ_le_succ_of_le {m n : Nat} (h : m ≤ n) : m + 1 ≤ n + 1 := by
  apply Nat.succ_le_succ
  exact h

theorem lt_of_le_of_lt_succ (a b c : Nat) (hab : a ≤ b) (hbc : b < c) : a < c + 1 := by
  calc a ≤ b := hab
    _ < c := hbc
    _ < c + 1 := by omega

theorem add_zero_add_eq (a b : Nat) (h : a = b) : a + 0 + b = 2 * b := by
  calc a + 0 + b = a + b := by rw [Nat.add_zero]
    _ = b + b := by rw [h]
    _ = 2 * b := by omega

theorem even_add_even {m n : Nat} (hm : ∃ a, m = 2 * a) (hn : ∃ b, n = 2 * b) :
    ∃ c, m + n = 2 * c := by
  cases hm with
  | intro a ha =>
    cases hn with
    | intro b hb =>
      refine ⟨a + b, ?_⟩
      omega

end SegpilotExamples
