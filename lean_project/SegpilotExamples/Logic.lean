/-!
# Logic

Propositional and first-order reasoning with the structural tactics: `intro`, `apply`,
`exact`, `constructor` and `refine` with `·` focusing, `cases` on `∧`, `∨` and `Bool`.
Core Lean only.
-/

namespace SegpilotExamples

theorem swap_and (p q : Prop) : p ∧ q → q ∧ p := by
  intro h
  cases h with
  | intro hp hq =>
    constructor
    · exact hq
    · exact hp

theorem swap_or (p q : Prop) : p ∨ q → q ∨ p := by
  intro h
  cases h with
  | inl hp => exact Or.inr hp
  | inr hq => exact Or.inl hq

theorem chain_imp (p q r : Prop) (hpq : p → q) (hqr : q → r) : p → r := by
  intro hp
  apply hqr
  apply hpq
  exact hp

theorem distrib_and_or (p q r : Prop) : p ∧ (q ∨ r) → (p ∧ q) ∨ (p ∧ r) := by
  intro h
  cases h with
  | intro hp hqr =>
    cases hqr with
    | inl hq => exact Or.inl ⟨hp, hq⟩
    | inr hr => exact Or.inr ⟨hp, hr⟩

theorem swap_iff (p q : Prop) : (p ↔ q) ↔ (q ↔ p) := by
  constructor
  · intro h
    exact ⟨h.mpr, h.mp⟩
  · intro h
    exact ⟨h.mpr, h.mp⟩

theorem double_negation_intro (p : Prop) : p → ¬¬p := by
  intro hp hnp
  exact hnp hp

theorem contrapose_imp (p q : Prop) (hpq : p → q) : ¬q → ¬p := by
  intro hnq hp
  exact hnq (hpq hp)

theorem split_forall_and {α : Type} (P Q : α → Prop) (h : ∀ x, P x ∧ Q x) :
    (∀ x, P x) ∧ (∀ x, Q x) := by
  refine ⟨?_, ?_⟩
  · intro x
    exact (h x).left
  · intro x
    exact (h x).right

theorem exists_greater (n : Nat) : ∃ m, n < m := by
  refine ⟨n + 1, ?_⟩
  omega

theorem exists_between (a b : Nat) (h : a + 1 < b) : ∃ c, a < c ∧ c < b := by
  refine ⟨a + 1, ?_, ?_⟩
  · omega
  · exact h

theorem bool_and_true (b : Bool) : (b && true) = b := by
  cases b with
  | false => rfl
  | true => rfl

theorem small_facts : [1, 2, 3].length = 3 ∧ 2 ^ 5 = 32 := by
  constructor
  · rfl
  · decide

end SegpilotExamples
